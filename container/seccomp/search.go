package seccomp

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"golang.org/x/sys/unix"
)

// An outcome is what the filter does with one number: return ret, or,
// when chain is set, test the arguments.
type outcome struct {
	ret   uint32
	chain *chain
}

// A chain is the argument tests of a plan, written once and shared by
// every number with the same plan.
type chain struct {
	plan    plan
	argBits int
	entry   label
	written bool
}

// outcomeOf returns the outcome of a plan, sharing chains.
func (c *compiler) outcomeOf(p plan, argBits int) outcome {
	if len(p.rules) == 0 {
		return outcome{ret: p.fallback}
	}
	key := p.key(argBits)
	ch := c.chains[key]
	if ch == nil {
		ch = &chain{plan: p, argBits: argBits}
		c.chains[key] = ch
	}
	return outcome{chain: ch}
}

// key identifies a plan with argument tests, to share its chain.
func (p plan) key(argBits int) string {
	b := strconv.AppendInt(nil, int64(argBits), 10)
	b = strconv.AppendUint(append(b, '/'), uint64(p.fallback), 16)
	for _, r := range p.rules {
		b = strconv.AppendUint(append(b, '|'), uint64(r.ret), 16)
		for _, c := range r.conds {
			b = fmt.Appendf(b, ",%d%s%x/%x", c.arg, c.op, c.v, c.w)
		}
	}
	return string(b)
}

// A span is a range of numbers an ABI knows; those no rule names get fill.
type span struct {
	lo, hi uint32
	fill   outcome
}

// An interval starts at lo and ends where the next one starts.
type interval struct {
	lo  uint32
	out outcome
}

// buildIntervals cuts the 32-bit number space into intervals: numbers
// with an outcome, the spans' fill between them, unknown outside spans.
// Neighbours with the same outcome merge. Spans and numbers come sorted
// (a section lists its ABIs in number order).
func buildIntervals(spans []span, numbered []numberedOutcome, unknown outcome) ([]interval, error) {
	var iv []interval
	var unordered bool
	add := func(lo uint64, o outcome) {
		if n := len(iv); n > 0 && uint64(iv[n-1].lo) > lo {
			unordered = true
		}
		if n := len(iv); n > 0 && uint64(iv[n-1].lo) == lo {
			iv = iv[:n-1] // superseded before it covered anything
		}
		if n := len(iv); n > 0 && iv[n-1].out == o {
			return
		}
		iv = append(iv, interval{lo: uint32(lo), out: o})
	}

	var next uint64 // first number not yet covered
	j := 0
	for _, sp := range spans {
		if next < uint64(sp.lo) {
			add(next, unknown)
		}
		add(uint64(sp.lo), sp.fill)
		for ; j < len(numbered) && numbered[j].nr <= sp.hi; j++ {
			nr := numbered[j].nr
			add(uint64(nr), numbered[j].out)
			if nr < sp.hi {
				add(uint64(nr)+1, sp.fill)
			}
		}
		next = uint64(sp.hi) + 1
	}
	if next <= math.MaxUint32 {
		add(next, unknown)
	}
	if unordered || j < len(numbered) {
		return nil, errors.New("internal error: syscall numbers out of order")
	}
	return iv, nil
}

// search writes a binary search of the number (in A) over intervals.
func (c *compiler) search(iv []interval) label {
	if len(iv) == 1 {
		return c.leaf(iv[0].out)
	}
	mid := len(iv) / 2
	above := c.search(iv[mid:])
	below := c.search(iv[:mid])
	return c.b.jump(unix.BPF_JGE, iv[mid].lo, above, below)
}

// leaf returns where an outcome starts, writing its chain on first use.
func (c *compiler) leaf(o outcome) label {
	if o.chain == nil {
		return c.b.ret(o.ret)
	}
	if !o.chain.written {
		o.chain.entry = c.writeChain(o.chain)
		o.chain.written = true
	}
	return o.chain.entry
}

// writeChain writes a plan's tests, last group first.
func (c *compiler) writeChain(ch *chain) label {
	next := c.b.ret(ch.plan.fallback)
	groups := ch.plan.groups(ch.argBits)
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		yes := c.b.ret(g[0].ret)
		if len(g) == 1 && !joinable(g[0], g[0], ch.argBits) {
			next = c.b.testAll(g[0].conds, ch.argBits, yes, next)
			continue
		}
		conds := make([]cond, len(g))
		for k, r := range g {
			conds[k] = r.conds[0]
		}
		next = c.b.testAny(conds, ch.argBits, yes, next)
	}
	return next
}
