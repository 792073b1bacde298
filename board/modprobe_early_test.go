package board

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// bigIndex is nftIndex with the aliases and modules of a distribution
// kernel's index added (some 24,000 device aliases, 4,000 modules):
// what a miss must not have to load into memory.
func bigIndex() map[string]string {
	files := map[string]string{}
	for k, v := range nftIndex {
		files[k] = v
	}
	var dep, alias strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&dep, "kernel/drivers/x/mod-%d.ko: kernel/drivers/x/mod-%d.ko\n", i, (i+1)%4000)
		for j := range 6 {
			fmt.Fprintf(&alias, "alias pci:v%08Xd%08Xsv*sd*bc*sc*i* mod_%d\n", i, j, i)
		}
	}
	files["modules.dep"] += dep.String()
	files["modules.alias"] += alias.String()
	return files
}

// TestModprobeRefusesEarly: a name the kernel asks for that no module of
// the index has — net-pf-NN for an address family this board has no
// module for, asked for at each socket() a container makes, up to 50
// helpers at once — is refused from a read of the index's files as a
// stream, without building the index in memory: few allocations, and
// the index is not opened. A name the index has is found as probe finds
// it.
func TestModprobeRefusesEarly(t *testing.T) {
	ix, _ := fakeModules(t, bigIndex(), nil)
	root := strings.TrimSuffix(ix.dir, filepath.Join("/lib/modules", filepath.Base(ix.dir)))
	opened := 0
	openIndex = func(root string) (*modIndex, error) {
		opened++
		return nil, errors.New("the index is not needed for a miss")
	}
	t.Cleanup(func() { openIndex = openModIndex })
	for _, name := range []string{"net-pf-35", "net-pf-16-proto-99", "fs-hostile", "nft-expr-", "pci:v00001AF5d00001000sv00001AF4sd00000001bc02sc00i00", "mod-4000"} {
		if st := modprobeIn(root, []string{"-q", "--", name}); st != 1 || opened != 0 {
			t.Errorf("modprobe -q -- %s: status %d, the index built %d times; want 1 and none", name, st, opened)
		}
		n := testing.AllocsPerRun(5, func() { modprobeIn(root, []string{"-q", "--", name}) })
		t.Logf("modprobe -q -- %s: %.0f allocations", name, n)
		if n > 100 {
			t.Errorf("modprobe -q -- %s: %.0f allocations for a miss, want at most 100", name, n)
		}
	}
	// What the stream finds is what probe resolves.
	for _, name := range []string{"nf_tables", "nf-tables", "nft-expr-nat", "rtnl_link-veth", "crypto-crc32c", "af_packet", "virtio",
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", "pci:v00000FA0d00000005sv1sd2bc3sc4i5", "mod-3999", "mod_17",
		"net-pf-35", "nft-expr", "pci:", ""} {
		found, err := resolvable(ix.dir, name)
		if want := len(ix.resolve(name)) > 0; found != want || err != nil {
			t.Errorf("resolvable(%q) = %v, %v; probe resolves it: %v", name, found, err, want)
		}
	}
	// An index that cannot be read is the full path's to report.
	if found, err := resolvable(filepath.Join(root, "nowhere"), "net-pf-35"); found || err == nil {
		t.Errorf("a missing index: %v, %v; want an error", found, err)
	}
}
