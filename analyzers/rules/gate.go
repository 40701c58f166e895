package rules

import (
	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// gate is what a rule's condition requires of an event, found in the
// conjuncts of its top-level && (impersonated, user.system, !user.system)
// and checked natively before the condition runs. An event that fails one
// cannot match, whatever the other conjuncts evaluate to (in CEL, false &&
// x is false even when x is an error), so skipping the evaluation changes
// no result; it saves a CEL evaluation on most events (most rules apply to
// people, not to the control plane, and a rule on impersonation to every
// event).
type gate uint8

const (
	gateImpersonated gate = 1 << iota // impersonated
	gateSystem                        // user.system
	gateNotSystem                     // !user.system
)

// gateOf finds the gate of a checked condition.
func gateOf(a *cel.Ast) gate {
	nat := a.NativeRep()
	refs := nat.ReferenceMap()
	variable := func(e celast.Expr) string {
		if ref, ok := refs[e.ID()]; ok && ref.Value == nil {
			return ref.Name // a variable, dotted names included
		}
		return ""
	}
	var g gate
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() == celast.CallKind {
			c := e.AsCall()
			switch c.FunctionName() {
			case operators.LogicalAnd:
				for _, arg := range c.Args() {
					walk(arg)
				}
			case operators.LogicalNot:
				if len(c.Args()) == 1 && variable(c.Args()[0]) == "user.system" {
					g |= gateNotSystem
				}
			}
			return
		}
		switch variable(e) {
		case "impersonated":
			g |= gateImpersonated
		case "user.system":
			g |= gateSystem
		}
	}
	walk(nat.Expr())
	return g
}

// admits tells whether the event passes the gate.
func (a *activation) admits(g gate) bool {
	if g&gateImpersonated != 0 && a.ev.Impersonated == nil {
		return false
	}
	if g&(gateSystem|gateNotSystem) != 0 {
		v, _ := a.ResolveName("user.system")
		system := v == types.True
		if g&gateSystem != 0 && !system || g&gateNotSystem != 0 && system {
			return false
		}
	}
	return true
}
