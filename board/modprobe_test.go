package board

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeModules writes a module index for the running kernel's release
// under a temporary root, and returns it opened, with module loading
// recorded (and failing for the names in fail) instead of done.
func fakeModules(t *testing.T, files map[string]string, fail map[string]error) (*modIndex, *[]string) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules", unix.ByteSliceToString(u.Release[:]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := openModIndex(root)
	if err != nil {
		t.Fatal(err)
	}
	ix.loaded = map[string]bool{} // the host's /proc/modules is not the test's
	var calls []string
	ix.insmod = func(path string) error {
		if !strings.HasPrefix(path, dir+"/") {
			t.Errorf("module file %s is outside %s", path, dir)
		}
		m := moduleName(path)
		calls = append(calls, m)
		return fail[m]
	}
	return ix, &calls
}

// nftIndex is the part of Debian 6.1's index that nf_tables needs, in
// the format depmod writes (relative paths, aliases with '-').
var nftIndex = map[string]string{
	"modules.dep": `kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nfnetlink.ko:
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/net/netfilter/nft_nat.ko: kernel/net/netfilter/nf_tables.ko kernel/net/netfilter/nf_nat.ko
kernel/net/netfilter/nf_nat.ko:
kernel/drivers/virtio/virtio_pci.ko:
kernel/drivers/net/veth.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko
kernel/net/802/stp.ko:
`,
	"modules.alias": `# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias nfnetlink-subsys-10 nf_tables
alias nft-expr-nat nft_nat
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias rtnl-link-veth veth
alias rtnl-link-bridge bridge
`,
	"modules.softdep": "# Soft dependencies\nsoftdep libcrc32c pre: crc32c\nsoftdep bridge post: br_netfilter\n",
	"modules.builtin": "kernel/net/packet/af_packet.ko\nkernel/drivers/virtio/virtio.ko\n",
}

// TestModprobe checks name resolution and load order against an index
// as depmod writes it: aliases (fnmatch patterns, '-' and '_' alike),
// dependencies first, soft dependencies before and after.
func TestModprobe(t *testing.T) {
	tests := []struct {
		name       string
		probe      string
		fail       map[string]error
		wantCalls  []string
		wantLoaded []string
		wantErr    string
	}{
		{name: "nf_tables: libcrc32c gets crc32c first", probe: "nf_tables",
			wantCalls:  []string{"nfnetlink", "crc32c_generic", "crc32c_intel", "libcrc32c", "nf_tables"},
			wantLoaded: []string{"nfnetlink", "crc32c_generic", "crc32c_intel", "libcrc32c", "nf_tables"}},
		{name: "an alias the kernel asks for", probe: "nft-expr-nat",
			wantCalls: []string{"nfnetlink", "crc32c_generic", "crc32c_intel", "libcrc32c", "nf_tables", "nf_nat", "nft_nat"}},
		{name: "one provider of an alias may fail", probe: "crypto-crc32c", fail: map[string]error{"crc32c_intel": unix.ENODEV},
			wantCalls: []string{"crc32c_generic", "crc32c_intel"}, wantLoaded: []string{"crc32c_generic"}},
		{name: "a device's modalias", probe: "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
			wantCalls: []string{"virtio_pci"}},
		{name: "a name with '-' is the module with '_'", probe: "rtnl_link-veth", wantCalls: []string{"veth"}},
		{name: "post: soft dependency after, a missing one skipped", probe: "rtnl-link-bridge",
			wantCalls: []string{"stp", "bridge"}},
		{name: "built in: nothing to load", probe: "af_packet", wantCalls: nil},
		{name: "unknown name", probe: "net-pf-99", wantErr: "module net-pf-99: file does not exist"},
		{name: "a failed soft dependency is named when the module fails", probe: "libcrc32c",
			fail:    map[string]error{"crc32c_generic": unix.ENOEXEC, "crc32c_intel": unix.ENODEV, "libcrc32c": unix.ENOENT},
			wantErr: "load module libcrc32c", wantCalls: []string{"crc32c_generic", "crc32c_intel", "libcrc32c"}},
		{name: "a failed dependency stops the module", probe: "nf_tables", fail: map[string]error{"nfnetlink": unix.ENOMEM},
			wantErr: "module nf_tables needs load module nfnetlink", wantCalls: []string{"nfnetlink"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix, calls := fakeModules(t, nftIndex, tc.fail)
			loaded, err := ix.probe(tc.probe)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("probe %s: error %v, want one containing %q", tc.probe, err, tc.wantErr)
				}
			} else if err != nil {
				t.Errorf("probe %s: %v", tc.probe, err)
			}
			if !slices.Equal(*calls, tc.wantCalls) {
				t.Errorf("probe %s loaded, in order, %v; want %v", tc.probe, *calls, tc.wantCalls)
			}
			if tc.wantLoaded != nil && !slices.Equal(loaded, tc.wantLoaded) {
				t.Errorf("probe %s reports %v loaded, want %v", tc.probe, loaded, tc.wantLoaded)
			}
			// A second probe finds everything in place.
			if err == nil && tc.fail == nil {
				before := len(*calls)
				if _, err := ix.probe(tc.probe); err != nil || len(*calls) != before {
					t.Errorf("second probe %s: %v, loaded %v again", tc.probe, err, (*calls)[before:])
				}
			}
		})
	}
}

// TestModprobeBrokenIndex: a dependency loop or a module missing from
// its own index ends in an error naming the module, not a crash.
func TestModprobeBrokenIndex(t *testing.T) {
	ix, _ := fakeModules(t, map[string]string{
		"modules.dep":     "a.ko: b.ko\nb.ko: a.ko\nc.ko: gone.ko\n",
		"modules.softdep": "softdep d pre: d\n",
	}, nil)
	if _, err := ix.probe("a"); err == nil || !strings.Contains(err.Error(), "dependency loop") {
		t.Errorf("probe a: %v, want a dependency loop", err)
	}
	if _, err := ix.probe("c"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "gone") {
		t.Errorf("probe c: %v, want gone is missing", err)
	}
	if _, err := ix.probe("d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("probe d: %v, want d is missing", err)
	}
}

// TestModprobeArgs parses the command lines the kernel and people use.
func TestModprobeArgs(t *testing.T) {
	tests := []struct {
		args  []string
		names []string
		quiet bool
	}{
		{[]string{"-q", "--", "nft-expr-nat"}, []string{"nft-expr-nat"}, true},
		{[]string{"veth"}, []string{"veth"}, false},
		{[]string{"-v", "--quiet", "a", "--", "-b"}, []string{"a", "-b"}, true},
		{nil, nil, false},
	}
	for _, tc := range tests {
		names, quiet := modprobeArgs(tc.args)
		if !slices.Equal(names, tc.names) || quiet != tc.quiet {
			t.Errorf("modprobeArgs(%q) = %q, %v; want %q, %v", tc.args, names, quiet, tc.names, tc.quiet)
		}
	}
}
