package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeStub answers as QEMU's gdbstub does: a stop reply to the interrupt
// byte, a register block to 'g', nothing to 'c'; it acknowledges each
// packet, and corrupts the checksum of the register block when bad.
func fakeStub(t *testing.T, c net.Conn, rip uint64, bad bool) {
	t.Helper()
	defer c.Close()
	r := bufio.NewReader(c)
	reply := func(data string) {
		var sum byte
		for i := 0; i < len(data); i++ {
			sum += data[i]
		}
		if bad && strings.HasPrefix(data, "00") {
			sum++
		}
		fmt.Fprintf(c, "+$%s#%02x", data, sum)
	}
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		switch b {
		case 0x03:
			reply("T02thread:01;")
		case '$':
			pkt, _ := r.ReadString('#')
			io.ReadFull(r, make([]byte, 2))
			switch {
			case pkt == "g#":
				regs := strings.Repeat("00", 16*8) + fmt.Sprintf("%016x", swap(rip)) + strings.Repeat("0", 40)
				reply(regs)
			case pkt == fmt.Sprintf("m%x,10#", rip):
				reply("c3cc0102030405060708090a0b0c0d0e")
			case strings.HasPrefix(pkt, "m"):
				reply("E14")
			}
		}
	}
}

// swap byte-reverses v: the stub sends registers little-endian.
func swap(v uint64) uint64 {
	var out uint64
	for i := 0; i < 8; i++ {
		out = out<<8 | v&0xff
		v >>= 8
	}
	return out
}

func TestGDBRemotePC(t *testing.T) {
	for _, bad := range []bool{false, true} {
		a, b := net.Pipe()
		go fakeStub(t, b, 0xffffffff81e01d30, bad)
		g := &gdbRemote{c: a, r: bufio.NewReader(a)}
		a.SetDeadline(time.Now().Add(5 * time.Second))
		if err := g.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		pc, err := g.pc()
		switch {
		case bad && err == nil:
			t.Errorf("a register block with a wrong checksum was taken: pc %#x", pc)
		case !bad && err != nil:
			t.Errorf("pc: %v", err)
		case !bad && pc != 0xffffffff81e01d30:
			t.Errorf("pc = %#x, want 0xffffffff81e01d30", pc)
		}
		g.Close()
	}
}

// A sample in berth's range carries the bytes at its pc; one the stub
// cannot read, none; one outside the range reads nothing.
func TestGDBRemoteSample(t *testing.T) {
	for _, tc := range []struct {
		rip, from uint64
		want      string
	}{
		{0x401000, 0x400000, "c3cc0102030405060708090a0b0c0d0e"},
		{0x401ff8, 0x400000, ""}, // the stub reads 16 bytes at the pc only: this asks for 8
		{0x401000, 0x402000, ""},
	} {
		a, b := net.Pipe()
		go fakeStub(t, b, tc.rip, false)
		g := &gdbRemote{c: a, r: bufio.NewReader(a)}
		a.SetDeadline(time.Now().Add(5 * time.Second))
		if err := g.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		s, err := g.sample([2]uint64{tc.from, 0x500000})
		if err != nil || s.pc != tc.rip || fmt.Sprintf("%x", s.code) != tc.want {
			t.Errorf("rip %#x, text from %#x: sample %#x %x, %v; want code %q", tc.rip, tc.from, s.pc, s.code, err, tc.want)
		}
		g.Close()
	}
}

func TestRegAtShort(t *testing.T) {
	if _, err := regAt(strings.Repeat("0", 16*17-1), amd64PC); err == nil {
		t.Error("a block one digit short of rip was read")
	}
	if _, err := regAt(strings.Repeat("0", 16*16)+"zz"+strings.Repeat("0", 14), amd64PC); err == nil {
		t.Error("a register that is not hex was read")
	}
}

// The test binary's own function table names its own code; kernel and
// other samples are counted apart.
func TestProfileAdd(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	p, err := newProfile(exe)
	if err != nil {
		t.Fatal(err)
	}
	fn := p.table.LookupFunc("berth/bench/boot.topN")
	if fn == nil {
		t.Fatal("topN not in the test binary's function table")
	}
	kernel, other := uint64(0xffffffff81000000), uint64(0x7f0000001000)
	at := func(pc uint64) []byte { return p.code[pc-p.text[0]:][:codeBytes] }
	// A busybox at berth's addresses: other bytes, or none read.
	busybox := append([]byte{}, at(fn.Entry)...)
	busybox[3]++
	p.add([]sample{{kernel, nil, 0}, {other, nil, 0}, {fn.Entry, at(fn.Entry), 1}, {kernel, nil, 1},
		{fn.Entry + 1, at(fn.Entry + 1)[:4], 1}, {other, nil, 2}, {fn.Entry, busybox, 2}, {fn.Entry, nil, 2}},
		[]string{"phase 1/2 a", "phase 2/2 b"})
	if p.n != 8 || p.class != [3]int{2, 2, 4} {
		t.Errorf("n %d, classes %v: want 8 samples, kernel 2, berth 2, other 4", p.n, p.class)
	}
	if p.kernelFuncs["[no symbol]"] != 2 {
		t.Errorf("kernel functions %v: want the 2 kernel samples, without symbols, as [no symbol]", p.kernelFuncs)
	}
	if p.funcs["berth/bench/boot.topN"] != 2 || p.pkg["berth/bench/boot"] != 2 {
		t.Errorf("funcs %v, packages %v", p.funcs, p.pkg)
	}
	// Each sample in the step up to the milestone after the ones it saw.
	want := map[string][3]int{"to phase 1/2 a": {1, 0, 1}, "to phase 2/2 b": {1, 2, 0}, "after the last milestone": {0, 0, 3}}
	if fmt.Sprint(p.stepOrder) != "[to phase 1/2 a to phase 2/2 b after the last milestone]" {
		t.Errorf("steps %q, want them in the order met", p.stepOrder)
	}
	for name, w := range want {
		if st := p.steps[name]; st == nil || st.class != w || st.n != w[0]+w[1]+w[2] {
			t.Errorf("step %q: %+v, want classes %v", name, st, w)
		}
	}
	if st := p.steps["to phase 2/2 b"]; st != nil && st.funcs["berth/bench/boot.topN"] != 2 {
		t.Errorf("step to phase 2/2 b: funcs %v, want topN twice", st.funcs)
	}
}

func TestTopN(t *testing.T) {
	got := topN(map[string]int{"a": 1, "b": 3, "c": 3, "d": 2}, 3)
	want := []counted{{"b", 3}, {"c", 3}, {"d", 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("topN = %v, want %v", got, want)
	}
}

func TestOutputWatch(t *testing.T) {
	w := newOutputWatch()
	for i, s := range []string{"[    1.0] berth: phase 1/2 early: 1 ms\n[    1.878974] berth: berth dev starting\n",
		"[    2.1] berth: phase 1/2 early: 1 ms\n[    2.2] berth: phase 1/2 early: 1 ms\n[    2.3] berth: image x ready\n",
		"[    2.66", "7450] hog | allocating", " until\n"} {
		select {
		case <-w.started:
			if i == 0 {
				t.Fatal("started before berth's first line")
			}
		default:
			if i > 0 {
				t.Fatal("berth's first line did not start the window")
			}
		}
		select {
		case <-w.done:
			t.Fatalf("done before the container's line was whole (at %q)", s)
		default:
		}
		w.Write([]byte(s))
	}
	select {
	case <-w.done:
	default:
		t.Fatal("the first container output line did not end the sampling")
	}
	if got := fmt.Sprint(w.milestones()); got != "[phase 1/2 early first image ready first container output]" {
		t.Errorf("milestones %s: want each once, in order, none before berth's first line", got)
	}
}

func TestKernelName(t *testing.T) {
	p := &profile{ksyms: parseKallsyms("junk\nKS ffffffff81000100 b\n[ 1.0] KS x\nKS ffffffff81000000 a\nKS zz c\n")}
	for pc, want := range map[uint64]string{
		0xffffffff81000000: "a",
		0xffffffff810000ff: "a",
		0xffffffff81000100: "b",
		0xffffffff81080000: "b",
		0xffffffff80ffffff: "[no symbol]",
		0xffffffffc0201659: "[no symbol: a module loaded since]",
	} {
		if got := p.kernelName(pc); got != want {
			t.Errorf("kernelName(%#x) = %q, want %q", pc, got, want)
		}
	}
}
