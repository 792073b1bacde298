//go:build amd64 || arm64 || riscv64

package hugeheap

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestIsBoot(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		want    bool
	}{
		{"berth\x00boot\x00", true},
		{"/sbin/berth\x00boot\x00--config\x00/etc/b.toml\x00", true},
		{"berth\x00boot", false}, // cut short: not a whole argument
		{"berth\x00booted\x00", false},
		{"berth\x00run\x00boot\x00", false},
		{"berth\x00", false},
		{"berth", false},
		{"", false},
		{"\x00boot\x00", true},
	} {
		if got := isBoot([]byte(c.cmdline)); got != c.want {
			t.Errorf("isBoot(%q) = %v, want %v", c.cmdline, got, c.want)
		}
	}
}

// vma is one mapping of /proc/self/smaps and the fields asked for.
type vma struct {
	lo, hi uintptr
	perms  string
	kb     map[string]int
}

func smaps(t *testing.T) []vma {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var out []vma
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			l, _ := strconv.ParseUint(lo, 16, 64)
			h, _ := strconv.ParseUint(hi, 16, 64)
			out = append(out, vma{lo: uintptr(l), hi: uintptr(h), perms: fields[1], kb: map[string]int{}})
			continue
		}
		if len(out) > 0 && len(fields) == 3 && fields[2] == "kB" {
			n, _ := strconv.Atoi(fields[1])
			out[len(out)-1].kb[strings.TrimSuffix(fields[0], ":")] = n
		}
	}
	return out
}

func find(t *testing.T, maps []vma, p uintptr) vma {
	for _, m := range maps {
		if m.lo <= p && p < m.hi {
			return m
		}
	}
	t.Fatalf("%#x is in no mapping", p)
	return vma{}
}

func thpMode(t *testing.T) string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return "none"
	}
	s := string(b)
	return s[strings.Index(s, "[")+1 : strings.Index(s, "]")]
}

// The test binary is a short-lived process like `berth run`: init took
// the heap's first 2 MiB as a huge page wherever the kernel allows it.
func TestHeapCollapsed(t *testing.T) {
	if first == nil {
		t.Fatal("init did not run for a process that is neither PID 1 nor berth boot")
	}
	errno := -int(collapsed)
	switch mode := thpMode(t); {
	case mode == "never" || mode == "none":
		if errno == 0 {
			t.Fatalf("MADV_COLLAPSE succeeded with transparent huge pages %q", mode)
		}
		t.Skipf("transparent huge pages %q: nothing to check", mode)
	case errno == 11: // EAGAIN: no free 2 MiB block just then
		t.Skip("MADV_COLLAPSE: EAGAIN")
	case errno != 0:
		t.Fatalf("MADV_COLLAPSE of the heap's first 2 MiB: errno %d", errno)
	}
	m := find(t, smaps(t), uintptr(unsafe.Pointer(first)))
	if m.kb["AnonHugePages"] < pmd>>10 {
		t.Errorf("heap mapping %#x-%#x: AnonHugePages %d kB, want at least %d", m.lo, m.hi, m.kb["AnonHugePages"], pmd>>10)
	}
}

// The linker's bounds name the code and the read-only data; init mapped
// them ahead, and populateText maps again what this process has let go.
func TestTextPopulated(t *testing.T) {
	start, end := textBounds()
	maps := smaps(t)
	text, ro := find(t, maps, start), find(t, maps, end-1)
	if !strings.HasPrefix(text.perms, "r-x") || !strings.HasPrefix(ro.perms, "r--") {
		t.Fatalf("textBounds %#x-%#x: %s and %s mappings, want r-x and r--", start, end, text.perms, ro.perms)
	}
	if !populated {
		t.Fatal("init did not map the text ahead")
	}
	// Unmap the read-only data's pages from this process (they fault
	// back in from the page cache): what the test reads since brings
	// back only some of them.
	const madvDontneed = 4
	if e := syscall3(sysMadvise, ro.lo, ro.hi-ro.lo, madvDontneed); e != 0 {
		t.Fatalf("MADV_DONTNEED: errno %d", -int(e))
	}
	if m := find(t, smaps(t), end-1); m.kb["Rss"] == m.kb["Size"] {
		t.Skipf("read-only data all resident again (%d kB) without populateText: nothing to tell apart", m.kb["Rss"])
	}
	if !populateText() {
		t.Fatal("populateText failed")
	}
	for _, m := range []vma{find(t, smaps(t), start), find(t, smaps(t), end-1)} {
		if m.kb["Rss"] != m.kb["Size"] {
			t.Errorf("%s mapping %#x-%#x: Rss %d kB of %d", m.perms, m.lo, m.hi, m.kb["Rss"], m.kb["Size"])
		}
	}
}

// TestIsModprobe: berth run by the kernel as its modprobe helper (its
// first argument ends in "modprobe") takes no huge page.
func TestIsModprobe(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		want    bool
	}{
		{"/run/berth/modprobe\x00-q\x00--\x00net-pf-35\x00", true},
		{"modprobe\x00-q\x00", true},
		{"modprobe", true},
		{"/sbin/berth\x00modprobe\x00", false},
		{"/run/berth/modprobe.new\x00", false},
		{"/run/modprobe/berth\x00", false},
		{"xmodprobe\x00", false},
		{"berth\x00run\x00", false},
		{"", false},
	} {
		if got := isModprobe([]byte(c.cmdline)); got != c.want {
			t.Errorf("isModprobe(%q) = %v, want %v", c.cmdline, got, c.want)
		}
	}
}
