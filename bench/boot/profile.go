package main

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth/appliance"
	"berth/internal/vm"
)

// A profile of berth's boot under TCG (-profile): what the guest's CPU
// runs between berth's start and the first container's output, sampled
// by stopping the virtual CPU through QEMU's gdbstub every -every and
// reading its program counter. Under TCG a sample falls on the code the
// CPU is about to run, whether QEMU is executing it or first translating
// it: the profile shows where the boot's wall time goes, translation
// included, which -icount's instruction clock does not. Berth's samples
// are named from its binary's own function table (.gopclntab, kept by a
// stripped build); the kernel's from its /proc/kallsyms, which a small
// init (bench/boot/kallsyms) prints in a boot of its own, all boots
// with nokaslr so that the addresses agree.

// sampleClass is where one sample's program counter lies.
type sampleClass int

const (
	inKernel sampleClass = iota
	inBerth
	inOther
)

// profile holds the samples of the boots.
type profile struct {
	text        [2]uint64 // berth's code, [start, end)
	table       *gosym.Table
	ksyms       []ksym // sorted by address
	n           int
	class       [3]int
	funcs, pkg  map[string]int
	kernelFuncs map[string]int
}

// ksym is one kernel code symbol.
type ksym struct {
	addr uint64
	name string
}

// kernelName is the kernel function holding pc: the symbol at or below
// it. A pc below the first has none; one far past the last is in a
// module berth loaded after the symbols were read.
func (p *profile) kernelName(pc uint64) string {
	i := sort.Search(len(p.ksyms), func(i int) bool { return p.ksyms[i].addr > pc }) - 1
	switch {
	case i < 0:
		return "[no symbol]"
	case i == len(p.ksyms)-1 && pc-p.ksyms[i].addr > 1<<20:
		return "[no symbol: a module loaded since]"
	}
	return p.ksyms[i].name
}

// parseKallsyms reads the "KS ADDRESS NAME" lines of a console.
func parseKallsyms(out string) []ksym {
	var ks []ksym
	for _, line := range strings.Split(out, "\n") {
		p := strings.Fields(line)
		if len(p) != 3 || p[0] != "KS" {
			continue
		}
		if a, err := strconv.ParseUint(p[1], 16, 64); err == nil {
			ks = append(ks, ksym{a, p[2]})
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].addr < ks[j].addr })
	return ks
}

// kernelSymbols boots the kallsyms init on m's kernel and reads them.
func kernelSymbols(repo string, m machine, dir string) ([]ksym, error) {
	bin := filepath.Join(dir, "kallsyms")
	if err := vm.BuildGo(repo, "./bench/boot/kallsyms", m.arch, bin); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "kallsyms.cpio.zst")
	i := appliance.NewInitramfs()
	if err := i.AddFile("init", bin, 0o755); err != nil {
		return nil, err
	}
	if err := i.Write(path); err != nil {
		return nil, err
	}
	c := m.cfg(path)
	c.Append = append(c.Append, "nokaslr")
	out, _, err := c.Boot(nil, "kallsyms: done")
	if err != nil {
		return nil, fmt.Errorf("kallsyms boot: %w", err)
	}
	ks := parseKallsyms(out)
	if len(ks) == 0 {
		return nil, fmt.Errorf("kallsyms boot printed no symbols:\n%s", out)
	}
	return ks, nil
}

func newProfile(berth string) (*profile, error) {
	f, err := elf.Open(berth)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	text, pcln := f.Section(".text"), f.Section(".gopclntab")
	if text == nil || pcln == nil {
		return nil, fmt.Errorf("%s: no .text or .gopclntab", berth)
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .gopclntab: %w", berth, err)
	}
	t, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("%s: function table: %w", berth, err)
	}
	return &profile{text: [2]uint64{text.Addr, text.Addr + text.Size}, table: t,
		funcs: map[string]int{}, pkg: map[string]int{}, kernelFuncs: map[string]int{}}, nil
}

func (p *profile) classify(pc uint64) sampleClass {
	switch {
	case pc >= 1<<63:
		return inKernel
	case pc >= p.text[0] && pc < p.text[1]:
		return inBerth
	}
	return inOther
}

// add counts one boot's samples, sampleBoot's window.
func (p *profile) add(pcs []uint64) {
	for _, pc := range pcs {
		c := p.classify(pc)
		p.n++
		p.class[c]++
		if c == inKernel {
			p.kernelFuncs[p.kernelName(pc)]++
		}
		if c != inBerth {
			continue
		}
		name, pkg := "?", "?"
		if fn := p.table.PCToFunc(pc); fn != nil {
			name, pkg = fn.Name, fn.PackageName()
		}
		p.funcs[name]++
		p.pkg[pkg]++
	}
}

// print writes the shares and the top entries.
func (p *profile) print(top int) {
	pct := func(n int) float64 { return 100 * float64(n) / float64(max(p.n, 1)) }
	fmt.Printf("  %d samples: kernel %.1f%%, berth %.1f%%, other %.1f%%\n",
		p.n, pct(p.class[inKernel]), pct(p.class[inBerth]), pct(p.class[inOther]))
	for _, t := range []struct {
		title string
		m     map[string]int
	}{{"the kernel's functions", p.kernelFuncs}, {"berth's packages", p.pkg}, {"berth's functions", p.funcs}} {
		fmt.Printf("  %s (share of all samples, top %d):\n", t.title, top)
		for _, e := range topN(t.m, top) {
			fmt.Printf("    %5.1f%%  %s\n", pct(e.n), e.name)
		}
	}
}

type counted struct {
	name string
	n    int
}

// topN is m's n largest counts, largest first, ties by name.
func topN(m map[string]int, n int) []counted {
	var out []counted
	for k, v := range m {
		out = append(out, counted{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].name < out[j].name
	})
	return out[:min(n, len(out))]
}

// outputWatch is a console writer that closes started at berth's first
// line and done at the first container's first output line, as parse
// finds them: the window of issue 11's figure.
type outputWatch struct {
	mu                 sync.Mutex
	buf                bytes.Buffer
	started, done      chan struct{}
	startOnce, outOnce sync.Once
}

func newOutputWatch() *outputWatch {
	return &outputWatch{started: make(chan struct{}), done: make(chan struct{})}
}

func (w *outputWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // a partial line: wait for its end
			return len(b), nil
		}
		m := stampRE.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
		switch {
		case m == nil:
		case isBerthStart(m[2]):
			w.startOnce.Do(func() { close(w.started) })
		case isContainerOutput(m[2]):
			w.outOnce.Do(func() { close(w.done) })
		}
	}
}

// profileBoots boots berth's demo runs times on tg (amd64) and prints
// the profile of its start → first output.
func profileBoots(repo string, tg target, runs int, every time.Duration, top int) error {
	if tg.arch != "amd64" || tg.board != "" {
		return fmt.Errorf("-profile reads x86-64 registers: amd64 only, not %s", tg.name)
	}
	dir, err := os.MkdirTemp("", "berth-bench-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m := machine{target: tg}
	if m.kernel, err = appliance.Kernel(repo, tg.arch); err != nil {
		return err
	}
	berth, _, initrd, err := demoBerth(repo, m, dir)
	if err != nil {
		return err
	}
	p, err := newProfile(berth)
	if err != nil {
		return err
	}
	if p.ksyms, err = kernelSymbols(repo, m, dir); err != nil {
		return err
	}
	for r := 0; r < runs; r++ {
		pcs, err := sampleBoot(m, initrd, filepath.Join(dir, "gdb.sock"), every)
		if err != nil {
			return fmt.Errorf("%s: boot %d: %w", tg.name, r+1, err)
		}
		p.add(pcs)
	}
	fmt.Printf("%s (kernel %s), QEMU TCG, demo config, %d boots: where the CPU is from berth's first line to the first container output, a sample every %v:\n",
		tg.name, filepath.Base(m.kernel), runs, every)
	p.print(top)
	return nil
}

// sampleBoot boots initrd with QEMU's gdbstub on sock, samples the
// program counter every interval and returns the samples from berth's
// first console line to the first container's output.
func sampleBoot(m machine, initrd, sock string, every time.Duration) ([]uint64, error) {
	os.Remove(sock)
	c := m.cfg(initrd)
	c.Append = append(c.Append, "nokaslr")
	c.ExtraQEMU = append(c.ExtraQEMU, "-gdb", "unix:"+sock+",server=on,wait=off")
	w := newOutputWatch()
	type result struct {
		out string
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, _, err := c.Boot(w, "berth: power off")
		res <- result{out, err}
	}()
	g, err := dialGDB("unix", sock, time.Minute)
	if err != nil {
		<-res
		return nil, err
	}
	var pcs []uint64
	from := -1
	for err == nil {
		if from < 0 {
			select {
			case <-w.started:
				from = len(pcs)
			default:
			}
		}
		select {
		case <-w.done:
			err = errDone
			continue
		case <-time.After(every):
		}
		var pc uint64
		if err = g.stop(); err == nil {
			if pc, err = g.pc(); err == nil {
				pcs = append(pcs, pc)
				err = g.resume()
			}
		}
	}
	g.Close()
	r := <-res
	if r.err != nil {
		return nil, fmt.Errorf("%w\n%s", r.err, r.out)
	}
	if err != errDone {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	if from < 0 {
		return nil, fmt.Errorf("sampling: the first container's output came, berth's first line never did\n%s", r.out)
	}
	return pcs[from:], nil
}

var errDone = fmt.Errorf("first output seen")
