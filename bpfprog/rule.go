package bpfprog

import (
	"fmt"
	"strings"
)

// Op is how a Cond compares a syscall argument.
type Op uint8

// The comparisons a Cond can make.
const (
	OpEq      Op = iota // arg & Mask == Value
	OpNe                // arg & Mask != Value
	OpAnySet            // arg & Mask != 0
	OpNoneSet           // arg & Mask == 0
)

// Cond is one test on one syscall argument.
type Cond struct {
	// Arg is the argument index, 0 to 5.
	Arg int
	// Op is the comparison.
	Op Op
	// Mask selects the bits compared; 0 means every bit of Width.
	Mask uint64
	// Value is compared with the masked argument by OpEq and OpNe.
	Value uint64
	// Width is 32 or 64. Arguments the kernel declares as int or unsigned
	// int must be compared at width 32: the kernel ignores the upper half of
	// the register, so a filter that compared it could be bypassed by
	// setting junk there.
	Width int
}

// EffectiveMask returns the bits c compares: Mask, or every bit of Width
// when Mask is 0, limited to the low word at width 32.
func (c Cond) EffectiveMask() uint64 {
	m := c.Mask
	if m == 0 {
		m = ^uint64(0)
	}
	if c.Width == 32 {
		m &= 0xffffffff
	}
	return m
}

func (c Cond) validate() error {
	if c.Arg < 0 || c.Arg > 5 {
		return fmt.Errorf("argument index %d out of range 0-5", c.Arg)
	}
	if c.Width != 32 && c.Width != 64 {
		return fmt.Errorf("argument width %d is not 32 or 64", c.Width)
	}
	if c.Op > OpNoneSet {
		return fmt.Errorf("unknown comparison %d", c.Op)
	}
	if (c.Op == OpEq || c.Op == OpNe) && c.Value&^c.EffectiveMask() != 0 {
		return fmt.Errorf("value %#x has bits outside mask %#x", c.Value, c.EffectiveMask())
	}
	return nil
}

// Eval reports whether arg satisfies c. It is the reference semantics the
// generated program is tested against.
func (c Cond) Eval(arg uint64) bool {
	v := arg & c.EffectiveMask()
	switch c.Op {
	case OpEq:
		return v == c.Value
	case OpNe:
		return v != c.Value
	case OpAnySet:
		return v != 0
	case OpNoneSet:
		return v == 0
	}
	return false
}

// String renders c like "arg0&0xff==0x2".
func (c Cond) String() string {
	ops := [...]string{OpEq: "==", OpNe: "!=", OpAnySet: "&any", OpNoneSet: "&none"}
	s := fmt.Sprintf("arg%d", c.Arg)
	if c.Width == 32 {
		s += ".lo"
	}
	switch c.Op {
	case OpAnySet, OpNoneSet:
		return fmt.Sprintf("%s%s(%#x)", s, ops[c.Op], c.EffectiveMask())
	}
	if c.Mask != 0 {
		s += fmt.Sprintf("&%#x", c.EffectiveMask())
	}
	return fmt.Sprintf("%s%s%#x", s, ops[c.Op], c.Value)
}

// Clause is a conjunction of conditions and the action taken when all hold.
type Clause struct {
	When []Cond
	Then Action
}

// Rule decides one syscall: the first clause whose conditions all hold gives
// the action, otherwise Else does.
type Rule struct {
	Clauses []Clause
	Else    Action
}

// Const returns the rule that always answers a.
func Const(a Action) Rule { return Rule{Else: a} }

// IsConst reports whether r answers the same whatever the arguments.
func (r Rule) IsConst() bool { return len(r.Clauses) == 0 }

// Eval returns r's verdict for args.
func (r Rule) Eval(args [6]uint64) Action {
	for _, cl := range r.Clauses {
		ok := true
		for _, c := range cl.When {
			if !c.Eval(args[c.Arg]) {
				ok = false
				break
			}
		}
		if ok {
			return cl.Then
		}
	}
	return r.Else
}

// Validate checks every condition of r.
func (r Rule) Validate() error {
	for _, cl := range r.Clauses {
		if len(cl.When) == 0 {
			return fmt.Errorf("clause without conditions (use Else)")
		}
		for _, c := range cl.When {
			if err := c.validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

// String renders cl like "arg0.lo&0x3==0x2: USER_NOTIF".
func (cl Clause) String() string {
	conds := make([]string, len(cl.When))
	for i, c := range cl.When {
		conds[i] = c.String()
	}
	return fmt.Sprintf("%s: %s", strings.Join(conds, " && "), cl.Then)
}

// String renders r on one line.
func (r Rule) String() string {
	var b strings.Builder
	for _, cl := range r.Clauses {
		fmt.Fprintf(&b, "if %s; ", cl.String())
	}
	b.WriteString(r.Else.String())
	return b.String()
}
