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
			if pkt == "g#" {
				regs := strings.Repeat("00", 16*8) + fmt.Sprintf("%016x", swap(rip)) + strings.Repeat("0", 40)
				reply(regs)
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
	p.add([]uint64{kernel, other, fn.Entry, kernel, fn.Entry + 1, other})
	if p.n != 6 || p.class != [3]int{2, 2, 2} {
		t.Errorf("n %d, classes %v: want 6 samples, kernel 2, berth 2, other 2", p.n, p.class)
	}
	if p.kernelFuncs["[no symbol]"] != 2 {
		t.Errorf("kernel functions %v: want the 2 kernel samples, without symbols, as [no symbol]", p.kernelFuncs)
	}
	if p.funcs["berth/bench/boot.topN"] != 2 || p.pkg["berth/bench/boot"] != 2 {
		t.Errorf("funcs %v, packages %v", p.funcs, p.pkg)
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
	for i, s := range []string{"[    1.878974] berth: berth dev starting\n", "[    2.66", "7450] hog | allocating", " until\n"} {
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
