package main

import (
	"bytes"
	"debug/gosym"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth/appliance"
	"berth/bench/internal/pcln"
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

// profile holds the samples of the boots: all of them, and those of
// each step, the samples up to a milestone of berth's console since the
// one before it (as the breakdown's steps).
type profile struct {
	text  [2]uint64 // berth's code, [start, end)
	code  []byte    // its bytes
	table *gosym.Table
	ksyms []ksym // sorted by address
	tally
	steps     map[string]*tally
	stepOrder []string // as first met
	boots     int
}

// tally counts samples: where they fell, and in which functions.
type tally struct {
	n           int
	class       [3]int
	funcs, pkg  map[string]int
	kernelFuncs map[string]int
}

func newTally() tally {
	return tally{funcs: map[string]int{}, pkg: map[string]int{}, kernelFuncs: map[string]int{}}
}

// sample is one program counter, the bytes there when it lies in the
// range of berth's code, and the number of milestones the console had
// shown when it was taken. Another static binary (a container's
// busybox) is linked at the same addresses as berth: only the bytes tell
// berth's code from its.
type sample struct {
	pc    uint64
	code  []byte
	marks int
}

// codeBytes is how many bytes at the program counter a sample reads.
const codeBytes = 16

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
	b, err := pcln.Open(berth)
	if err != nil {
		return nil, err
	}
	return &profile{text: b.Text, code: b.Code, table: b.Table, tally: newTally(), steps: map[string]*tally{}}, nil
}

// classify tells where a sample lies: berth's code when it is in its
// range and the bytes there are berth's.
func (p *profile) classify(s sample) sampleClass {
	switch {
	case s.pc >= 1<<63:
		return inKernel
	case s.pc >= p.text[0] && s.pc < p.text[1] && len(s.code) > 0 &&
		bytes.HasPrefix(p.code[s.pc-p.text[0]:], s.code):
		return inBerth
	}
	return inOther
}

// add counts one boot's samples, sampleBoot's window; marks are the
// milestones its console showed, in order.
func (p *profile) add(samples []sample, marks []string) {
	p.boots++
	for _, s := range samples {
		name := "after the last milestone"
		if s.marks < len(marks) {
			name = "to " + marks[s.marks]
		}
		st := p.steps[name]
		if st == nil {
			t := newTally()
			st = &t
			p.steps[name] = st
			p.stepOrder = append(p.stepOrder, name)
		}
		p.count(&p.tally, s)
		p.count(st, s)
	}
}

// count adds s to t.
func (p *profile) count(t *tally, s sample) {
	pc, c := s.pc, p.classify(s)
	t.n++
	t.class[c]++
	if c == inKernel {
		t.kernelFuncs[p.kernelName(pc)]++
	}
	if c != inBerth {
		return
	}
	name, pkg := "?", "?"
	if fn := p.table.PCToFunc(pc); fn != nil {
		name, pkg = fn.Name, fn.PackageName()
	}
	t.funcs[name]++
	t.pkg[pkg]++
}

// print writes the shares and the top entries, of all samples and of
// each step.
func (p *profile) print(top, stepTop int) {
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
	fmt.Printf("  by step, up to each milestone from the one before (shares of the step's samples, top %d):\n", stepTop)
	for _, name := range p.stepOrder {
		st := p.steps[name]
		fmt.Printf("    %s: %.1f%% of all samples, %.1f a boot; kernel %.0f%%, berth %.0f%%\n", name, pct(st.n),
			float64(st.n)/float64(max(p.boots, 1)), st.share(st.class[inKernel]), st.share(st.class[inBerth]))
		for _, t := range []struct {
			title string
			m     map[string]int
		}{{"kernel", st.kernelFuncs}, {"berth packages", st.pkg}, {"berth functions", st.funcs}} {
			var b strings.Builder
			for i, e := range topN(t.m, stepTop) {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s %.1f%%", e.name, st.share(e.n))
			}
			if b.Len() > 0 {
				fmt.Printf("      %s: %s\n", t.title, b.String())
			}
		}
	}
}

// share is n as a percentage of t's samples.
func (t *tally) share(n int) float64 { return 100 * float64(n) / float64(max(t.n, 1)) }

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
	marks              []string // the milestones since berth's first line, in order
}

// milestones is the milestones seen so far.
func (w *outputWatch) milestones() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.marks
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
		case isBerthStart(m[2]) || strings.HasPrefix(m[2], floorStart):
			w.startOnce.Do(func() { close(w.started) })
		case isContainerOutput(m[2]):
			w.outOnce.Do(func() { close(w.done) })
		}
		if m != nil {
			w.mark(milestoneOf(m[2]))
		}
	}
}

// mark appends name, a milestone, once berth has started and if new.
func (w *outputWatch) mark(name string) {
	select {
	case <-w.started:
	default:
		return
	}
	if name == "" || slices.Contains(w.marks, name) {
		return
	}
	w.marks = append(w.marks, name)
}

// profileBoots boots berth's demo runs times on tg (amd64) and prints
// the profile of its start → first output; with floor, the floor with
// berth's isolation in berth's place.
func profileBoots(repo string, tg target, runs int, every time.Duration, top, stepTop int, floor bool) error {
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
	berth, img, initrd, err := demoBerth(repo, m, dir)
	if err != nil {
		return err
	}
	// bin is the sampled init's binary, whose function table names its
	// samples.
	bin, who, until := berth, "berth", "berth: power off"
	if floor {
		floors, err := floorInitramfs(repo, m, img, dir)
		if err != nil {
			return err
		}
		bin, who, until, initrd = filepath.Join(dir, floorBuilds[1].file), "the "+floorBuilds[1].name, "floor: power off", floors[1]
	}
	p, err := newProfile(bin)
	if err != nil {
		return err
	}
	if p.ksyms, err = kernelSymbols(repo, m, dir); err != nil {
		return err
	}
	for r := 0; r < runs; r++ {
		samples, marks, err := sampleBoot(m, initrd, until, filepath.Join(dir, "gdb.sock"), every, p.text)
		if err != nil {
			return fmt.Errorf("%s: boot %d: %w", tg.name, r+1, err)
		}
		p.add(samples, marks)
	}
	fmt.Printf("%s (kernel %s), QEMU TCG, demo config, %d boots: where the CPU is from %s's first line to the first container output, a sample every %v:\n",
		tg.name, filepath.Base(m.kernel), runs, who, every)
	p.print(top, stepTop)
	return nil
}

// sampleBoot boots initrd with QEMU's gdbstub on sock, samples the
// program counter every interval and returns the samples from berth's
// (or the floor's) first console line to the first container's output,
// and the milestones its console showed in that time; the boot ends
// when the console shows until. A sample in text, the range of berth's
// code, carries the bytes there.
func sampleBoot(m machine, initrd, until, sock string, every time.Duration, text [2]uint64) ([]sample, []string, error) {
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
		out, _, err := c.Boot(w, until)
		res <- result{out, err}
	}()
	g, err := dialGDB("unix", sock, time.Minute)
	if err != nil {
		<-res
		return nil, nil, err
	}
	var pcs []sample
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
		if err = g.stop(); err == nil {
			var s sample
			if s, err = g.sample(text); err == nil {
				s.marks = len(w.milestones())
				pcs = append(pcs, s)
				err = g.resume()
			}
		}
	}
	g.Close()
	r := <-res
	if r.err != nil {
		return nil, nil, fmt.Errorf("%w\n%s", r.err, r.out)
	}
	if err != errDone {
		return nil, nil, fmt.Errorf("sampling: %w", err)
	}
	if from < 0 {
		return nil, nil, fmt.Errorf("sampling: the first container's output came, berth's first line never did\n%s", r.out)
	}
	return pcs[from:], w.milestones(), nil
}

var errDone = fmt.Errorf("first output seen")
