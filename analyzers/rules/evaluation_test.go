package rules

import "testing"

func TestGateOf(t *testing.T) {
	env, err := newEnv(map[string][]string{"x": {"a"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cond string
		want gate
	}{
		{`impersonated && impersonatedUser.username == "system:admin"`, gateImpersonated},
		{`!user.system && verb == "get"`, gateNotSystem},
		{`verb == "get" && (impersonated && !user.system)`, gateImpersonated | gateNotSystem},
		{`user.system && impersonated`, gateSystem | gateImpersonated},
		{`impersonated || user.system`, 0},        // a disjunction requires neither
		{`!(user.system && verb != "create")`, 0}, // nor a negated conjunction
		{`!impersonated`, 0},
		{`verb == "get"`, 0},
		{`"impersonated" in lists.x`, 0},
	}
	for _, tc := range tests {
		ast, iss := env.Compile(tc.cond)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", tc.cond, iss.Err())
		}
		if got := gateOf(ast); got != tc.want {
			t.Errorf("gateOf(%s) = %b, want %b", tc.cond, got, tc.want)
		}
	}
}

// TestGatesOfTheDefaultRules: the default rules that start with the usual
// guards get their gates (which skip a CEL evaluation on most events).
func TestGatesOfTheDefaultRules(t *testing.T) {
	e, err := Compile(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]gate{
		"impersonation-privileged":       gateImpersonated,
		"wildcard-role":                  gateNotSystem,
		"rbac-changed-by-serviceaccount": gateNotSystem,
	} {
		if r := e.Rule(id); r == nil || r.gate != want {
			t.Errorf("rule %s: %+v, want gate %b", id, r, want)
		}
	}
}

// TestVariableIndex: the switch of variableIndex names every variable at
// its index, within the activation's bound.
func TestVariableIndex(t *testing.T) {
	if len(variables) > maxVariables {
		t.Fatalf("%d variables, activation holds %d", len(variables), maxVariables)
	}
	for i, v := range variables {
		if got := variableIndex(v.name); got != i {
			t.Errorf("variableIndex(%q) = %d, want %d", v.name, got, i)
		}
	}
	if variableIndex("user") != -1 || variableIndex("") != -1 {
		t.Error("a name that is no variable has an index")
	}
}

// TestFunctionsRefuseWrongTypes: Faultline's functions run without CEL's
// type guards and check their arguments themselves: a wrong type is still
// an evaluation error (counted, no match), not a silent false.
func TestFunctionsRefuseWrongTypes(t *testing.T) {
	for _, cond := range []string{
		`requestObject.?kind.orValue(0).matchesAny(["a*"])`,
		`verb.startsWithAny(requestObject.?x.orValue(["get", 1]))`,
		`requestObject.?kind.orValue(0).normalizeImage() == ""`,
	} {
		e, err := Compile(Options{Sources: []Source{src(map[string]string{"r.yaml": "rules:\n  - {id: r, name: r, severity: low, condition: '" + cond + "'}\n"})}})
		if err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		if hits := evaluate(t, e, event(t, "get", "pods", "alice")); len(hits) != 0 || e.EvalErrors() != 1 {
			t.Errorf("%s: %d hits, %d evaluation errors; want 0 and 1", cond, len(hits), e.EvalErrors())
		}
	}
}
