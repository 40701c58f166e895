package schemas

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Tolerance expressions, as experiment files write them (ParseTolerance):
//
//	tolerance   = [ "experimental" ] comparison
//	            | [ "experimental" ] "in" "[" number "," number "]"
//	            | "mann-whitney-u" [ "p" "=" number ]
//	comparison  = op number                                  (absolute)
//	            | op "control" [ times number ]              (relative)
//	            | op number times "control"                  (relative)
//	op          = "<" | "<=" | ">" | ">=" | "≤" | "≥"
//	times       = "*" | "×"
//	number      = [ "+" | "-" ] ( digits [ "." [ digits ] ] | "." digits ) [ exponent ]
//
// Space between tokens is optional. The range is closed (min ≤ x ≤ max,
// min ≤ max); a factor is greater than 0 and defaults to 1; p is in (0, 1)
// and defaults to 0.05. Keywords are lowercase.

// ParseTolerance parses a tolerance expression into a Tolerance whose Expr
// is the expression as written (without surrounding space). Errors quote
// the expression and say what is wrong, e.g.
// `"<= control * x": factor is not a number: "x"`.
func ParseTolerance(expr string) (Tolerance, error) {
	s := strings.Trim(expr, " \t\r\n")
	fail := func(format string, args ...any) (Tolerance, error) {
		return Tolerance{}, fmt.Errorf("%q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return Tolerance{}, errors.New(`tolerance is empty: write e.g. "< 0.01", "in [0.9, 1]", "<= control * 1.2" or "mann-whitney-u p=0.05"`)
	}
	if !utf8.ValidString(s) {
		return fail("not valid UTF-8")
	}
	toks, err := lexTolerance(s)
	if err != nil {
		return fail("%v", err)
	}
	p := &tolParser{toks: toks}
	t := Tolerance{Expr: s}
	first := p.peek()
	if first.kind == tokWord && first.text == "experimental" {
		p.next()
		first = p.peek()
		if first.kind == tokWord && first.text == TestMannWhitneyU {
			return fail("a statistical test compares both groups: write %q without \"experimental\"", TestMannWhitneyU)
		}
	}
	switch {
	case first.kind == tokOp:
		p.next()
		t.Op = first.text
		operand := p.next()
		switch {
		case operand.kind == tokWord && operand.text == "control":
			t.Kind = ToleranceRelative
			factor := 1.0
			if p.peek().kind == tokTimes {
				p.next()
				f := p.next()
				if f.kind != tokNumber {
					return fail("factor is not a number: %s", f)
				}
				if factor, err = parseTolNumber(f.text); err != nil {
					return fail("factor %v", err)
				}
			}
			t.Factor = &factor
		case operand.kind == tokNumber && p.peek().kind == tokTimes:
			v, err := parseTolNumber(operand.text)
			if err != nil {
				return fail("factor %v", err)
			}
			p.next()
			if c := p.next(); c.kind != tokWord || c.text != "control" {
				return fail("expected \"control\" after %s *, found %s", operand.text, c)
			}
			t.Kind = ToleranceRelative
			t.Factor = &v
		case operand.kind == tokNumber:
			v, err := parseTolNumber(operand.text)
			if err != nil {
				return fail("bound %v", err)
			}
			t.Kind = ToleranceAbsolute
			t.Value = &v
		case operand.kind == tokEOF:
			return fail("%s needs a bound: a number or control [* factor]", t.Op)
		default:
			return fail("bound is not a number or control: %s", operand)
		}
	case first.kind == tokWord && first.text == "in":
		p.next()
		if b := p.next(); b.kind != tokLBracket {
			if b.kind == tokLParen {
				return fail("ranges are closed: write in [min, max]")
			}
			return fail("expected [min, max] after in, found %s", b)
		}
		lo := p.next()
		if lo.kind != tokNumber {
			return fail("range min is not a number: %s", lo)
		}
		if c := p.next(); c.kind != tokComma {
			return fail("expected ',' after the range min, found %s", c)
		}
		hi := p.next()
		if hi.kind != tokNumber {
			return fail("range max is not a number: %s", hi)
		}
		if b := p.next(); b.kind != tokRBracket {
			if b.kind == tokRParen {
				return fail("ranges are closed: write in [min, max]")
			}
			return fail("expected ']' after the range max, found %s", b)
		}
		minV, err := parseTolNumber(lo.text)
		if err != nil {
			return fail("range min %v", err)
		}
		maxV, err := parseTolNumber(hi.text)
		if err != nil {
			return fail("range max %v", err)
		}
		t.Kind = ToleranceRange
		t.Min, t.Max = &minV, &maxV
	case first.kind == tokWord && first.text == TestMannWhitneyU:
		p.next()
		t.Kind = ToleranceStatistical
		t.Test = TestMannWhitneyU
		pv := DefaultStatisticalP
		if w := p.peek(); w.kind == tokWord && w.text == "p" {
			p.next()
			if eq := p.next(); eq.kind != tokEq {
				return fail("expected p=<significance>, found p %s", eq)
			}
			n := p.next()
			if n.kind != tokNumber {
				return fail("p is not a number: %s", n)
			}
			if pv, err = parseTolNumber(n.text); err != nil {
				return fail("p %v", err)
			}
		}
		t.P = &pv
	case first.kind == tokWord && isTestName(first.text):
		return fail("unknown test %q: the test Faultline implements is %s", first.text, TestMannWhitneyU)
	case first.kind == tokNumber:
		return fail("starts with a number: write the comparison first, e.g. \"< %s\"", first.text)
	default:
		return fail("expected a comparison (<, <=, >, >=), \"in [min, max]\" or %q, found %s", TestMannWhitneyU, first)
	}
	if rest := p.peek(); rest.kind != tokEOF {
		return fail("unexpected %s after %q", rest, strings.TrimSpace(s[:rest.pos]))
	}
	if err := t.Validate(); err != nil {
		return fail("%v", err)
	}
	return t, nil
}

// isTestName reports whether w looks like the name of a statistical test
// (a word with a dash, such as t-test or kolmogorov-smirnov).
func isTestName(w string) bool { return strings.Contains(w, "-") }

// Validate checks that t is complete and consistent for its kind: the
// fields the kind needs are set and finite, ops are known, min ≤ max, the
// factor is greater than 0 and p is in (0, 1). It does not look at Expr.
func (t *Tolerance) Validate() error {
	finite := func(name string, v *float64) error {
		if v == nil {
			return fmt.Errorf("%s tolerance needs %s", t.Kind, name)
		}
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			return fmt.Errorf("%s must be a finite number", name)
		}
		return nil
	}
	op := func() error {
		switch t.Op {
		case "<", "<=", ">", ">=":
			return nil
		case "":
			return fmt.Errorf("%s tolerance needs an op", t.Kind)
		}
		return fmt.Errorf("op %q is not one of <, <=, >, >=", t.Op)
	}
	switch t.Kind {
	case ToleranceAbsolute:
		return errors.Join(op(), finite("value", t.Value))
	case ToleranceRange:
		if err := errors.Join(finite("min", t.Min), finite("max", t.Max)); err != nil {
			return err
		}
		if *t.Min > *t.Max {
			return fmt.Errorf("range min %s is greater than max %s", fmtNum(*t.Min), fmtNum(*t.Max))
		}
		return nil
	case ToleranceRelative:
		if err := errors.Join(op(), finite("factor", t.Factor)); err != nil {
			return err
		}
		if *t.Factor <= 0 {
			return fmt.Errorf("factor must be greater than 0 (got %s)", fmtNum(*t.Factor))
		}
		return nil
	case ToleranceStatistical:
		if t.Test != TestMannWhitneyU {
			return fmt.Errorf("unknown test %q: the test Faultline implements is %s", t.Test, TestMannWhitneyU)
		}
		if err := finite("p", t.P); err != nil {
			return err
		}
		if *t.P <= 0 || *t.P >= 1 {
			return fmt.Errorf("p must be between 0 and 1, exclusive (got %s)", fmtNum(*t.P))
		}
		return nil
	case "":
		return errors.New("tolerance has no kind")
	}
	return fmt.Errorf("unknown tolerance kind %q", t.Kind)
}

// NeedsControl reports whether judging t needs the control group's data.
func (t *Tolerance) NeedsControl() bool {
	return t.Kind == ToleranceRelative || t.Kind == ToleranceStatistical
}

// FormatTolerance writes t in the canonical form of the grammar, e.g.
// "<= control * 1.2"; ParseTolerance of it gives t back (with that Expr).
// A tolerance that does not Validate is written as best it can be.
func FormatTolerance(t Tolerance) string {
	num := func(v *float64) string {
		if v == nil {
			return "?"
		}
		return fmtNum(*v)
	}
	switch t.Kind {
	case ToleranceAbsolute:
		return t.Op + " " + num(t.Value)
	case ToleranceRange:
		return "in [" + num(t.Min) + ", " + num(t.Max) + "]"
	case ToleranceRelative:
		return t.Op + " control * " + num(t.Factor)
	case ToleranceStatistical:
		return t.Test + " p=" + num(t.P)
	}
	return string(t.Kind)
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func parseTolNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%s is out of range", s)
	}
	return v, nil
}

type tolTokKind int

const (
	tokEOF tolTokKind = iota
	tokOp
	tokNumber
	tokWord
	tokLBracket
	tokRBracket
	tokLParen
	tokRParen
	tokComma
	tokTimes
	tokEq
)

type tolToken struct {
	kind tolTokKind
	text string
	pos  int // byte offset in the expression
}

// String quotes the token for error messages.
func (t tolToken) String() string {
	if t.kind == tokEOF {
		return "the end"
	}
	return strconv.Quote(t.text)
}

type tolParser struct {
	toks []tolToken
	i    int
}

func (p *tolParser) peek() tolToken { return p.toks[p.i] }

func (p *tolParser) next() tolToken {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

// lexTolerance splits s into tokens, ending with tokEOF.
func lexTolerance(s string) ([]tolToken, error) {
	var toks []tolToken
	i := 0
	for i < len(s) {
		c := s[i]
		start := i
		switch {
		case c == ' ' || c == '\t':
			i++
			continue
		case c == '<' || c == '>':
			i++
			if i < len(s) && s[i] == '=' {
				i++
			}
			toks = append(toks, tolToken{tokOp, s[start:i], start})
			continue
		case strings.HasPrefix(s[i:], "≤"):
			i += len("≤")
			toks = append(toks, tolToken{tokOp, "<=", start})
			continue
		case strings.HasPrefix(s[i:], "≥"):
			i += len("≥")
			toks = append(toks, tolToken{tokOp, ">=", start})
			continue
		case strings.HasPrefix(s[i:], "×"):
			i += len("×")
			toks = append(toks, tolToken{tokTimes, "×", start})
			continue
		case c == '=' || c == '!':
			j := i + 1
			for j < len(s) && (s[j] == '=' || s[j] == '<' || s[j] == '>') {
				j++
			}
			if c == '=' && j == i+1 {
				toks = append(toks, tolToken{tokEq, "=", start})
				i = j
				continue
			}
			return nil, fmt.Errorf("unknown operator %q: use <, <=, > or >= (or in [x, x] for equality)", s[i:j])
		case isDigit(c) || c == '.' || ((c == '+' || c == '-') && i+1 < len(s) && (isDigit(s[i+1]) || s[i+1] == '.')):
			j := i
			if c == '+' || c == '-' {
				j++
			}
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j < len(s) && s[j] == '.' {
				j++
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
				k := j + 1
				if k < len(s) && (s[k] == '+' || s[k] == '-') {
					k++
				}
				if k < len(s) && isDigit(s[k]) {
					for k < len(s) && isDigit(s[k]) {
						k++
					}
					j = k
				}
			}
			// A number runs into letters ("1.2x", "5ms"): take the
			// whole word so the error shows it.
			k := j
			for k < len(s) && isWordByte(s[k]) {
				k++
			}
			if k > j || !strings.ContainsAny(s[i:j], "0123456789") {
				toks = append(toks, tolToken{tokWord, s[i:k], start})
				i = k
				continue
			}
			toks = append(toks, tolToken{tokNumber, s[i:j], start})
			i = j
			continue
		case isLetter(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, tolToken{tokWord, s[i:j], start})
			i = j
			continue
		}
		kinds := map[byte]tolTokKind{'[': tokLBracket, ']': tokRBracket, '(': tokLParen, ')': tokRParen, ',': tokComma, '*': tokTimes}
		if k, ok := kinds[c]; ok {
			toks = append(toks, tolToken{k, s[i : i+1], start})
			i++
			continue
		}
		r, _ := utf8.DecodeRuneInString(s[i:])
		return nil, fmt.Errorf("unexpected character %q", r)
	}
	return append(toks, tolToken{tokEOF, "", len(s)}), nil
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isWordByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '-' || c == '.'
}
