package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// entry is one tar entry of a hand-made archive.
type entry struct {
	name, link string
	typ        byte
	data       string
	mode       int64
}

// writeTar writes entries as a plain tar file.
func writeTar(t *testing.T, path string, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.data))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileEntries unpacks archives that try to write outside DIR. Each
// must fail naming the offending entry, leave the sentinel directory beside
// DIR (and its mode) untouched, and write nothing else outside DIR.
func TestHostileEntries(t *testing.T) {
	const (
		dir  = tar.TypeDir
		reg  = tar.TypeReg
		sym  = tar.TypeSymlink
		hard = tar.TypeLink
	)
	// SENTINEL in names and targets is replaced by the sentinel's path.
	cases := []struct {
		name    string
		entries []entry
		bad     string // the entry the error must name
	}{
		{"dotdot", []entry{{name: "ok", typ: reg, data: "x"}, {name: "../x", typ: reg, data: "x"}}, "../x"},
		{"absolute", []entry{{name: "SENTINEL/abs", typ: reg, data: "x"}}, "SENTINEL/abs"},
		{"dotdot inside", []entry{{name: "a/", typ: dir}, {name: "a/../../x", typ: reg, data: "x"}}, "a/../../x"},
		{"absolute symlink then through it", []entry{
			{name: "evil", typ: sym, link: "SENTINEL"}, {name: "evil/file", typ: reg, data: "x"}}, "evil/file"},
		{"relative symlink then through it", []entry{
			{name: "evil", typ: sym, link: "../.."}, {name: "evil/file", typ: reg, data: "x"}}, "evil/file"},
		{"relative symlink to sentinel", []entry{
			{name: "evil", typ: sym, link: "../sentinel"}, {name: "evil/file", typ: reg, data: "x"}}, "evil/file"},
		{"symlink then directory through it", []entry{
			{name: "evil", typ: sym, link: "SENTINEL"}, {name: "evil/sub/", typ: dir}}, "evil/sub/"},
		{"hardlink outside", []entry{{name: "h", typ: hard, link: "../outside"}}, "h"},
		{"hardlink absolute", []entry{{name: "h", typ: hard, link: "SENTINEL/../outside"}}, "h"},
		{"hardlink through symlink", []entry{
			{name: "evil", typ: sym, link: ".."}, {name: "h", typ: hard, link: "evil/outside"}}, "h"},
		{"hardlink to directory", []entry{{name: "d/", typ: dir}, {name: "h", typ: hard, link: "d"}}, "h"},
		{"hardlink to root", []entry{{name: "h", typ: hard, link: "./"}}, "h"},
		{"root as symlink", []entry{{name: ".", typ: sym, link: "SENTINEL"}, {name: "file", typ: reg, data: "x"}}, "."},
		{"root as file", []entry{{name: ".", typ: reg, data: "x"}}, "."},
		{"root as hardlink", []entry{{name: "f", typ: reg}, {name: "./.", typ: hard, link: "f"}}, "./."},
		{"dir replaced by symlink, then written through", []entry{
			{name: "d/", typ: dir, mode: 0o700}, {name: "d", typ: sym, link: "SENTINEL"},
			{name: "d/file", typ: reg, data: "x"}}, "d/file"},
		{"nested dir replaced by symlink", []entry{
			{name: "a/b/", typ: dir}, {name: "a/b", typ: sym, link: "../../sentinel"},
			{name: "a/b/c/", typ: dir}}, "a/b/c/"},
		{"device out of range", []entry{{name: "dev", typ: tar.TypeChar}}, "dev"},
		{"empty name", []entry{{name: "", typ: reg, data: "x"}}, ""},
		{"file then a path under it", []entry{{name: "f", typ: reg, data: "x"}, {name: "f/x", typ: reg, data: "x"}}, "f/x"},
		{"symlink to a directory inside, then through it", []entry{
			{name: "d/", typ: dir}, {name: "l", typ: sym, link: "d"}, {name: "l/x", typ: reg, data: "x"}}, "l/x"},
		{"directory replaced by a file, then under it", []entry{
			{name: "d/", typ: dir}, {name: "d", typ: reg, data: "x"}, {name: "d/x", typ: reg, data: "x"}}, "d/x"},
		{"hardlink to an outward symlink, then through it", []entry{
			{name: "s", typ: sym, link: "SENTINEL"}, {name: "h", typ: hard, link: "s"}, {name: "h/x", typ: reg, data: "x"}}, "h/x"},
		{"symlink then a hardlink through it", []entry{
			{name: "evil", typ: sym, link: "SENTINEL"}, {name: "evil/h", typ: hard, link: "x"}}, "evil/h"},
		{"component too long", []entry{{name: strings.Repeat("n", 256), typ: reg}}, strings.Repeat("n", 256)},
	}
	for mode, m := range unpackModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				hostileCase(t, mode, c.entries, c.bad, c.name == "device out of range")
			})
		}
	}
}

// hostileCase unpacks entries in one mode: it must fail naming bad and
// leave everything outside DEST alone.
func hostileCase(t *testing.T, mode int, entries []entry, bad string, device bool) {
	{
		{
			base := t.TempDir()
			sentinel := filepath.Join(base, "sentinel")
			os.Mkdir(sentinel, 0o755)
			os.WriteFile(filepath.Join(base, "outside"), []byte("outside"), 0o644)
			fix := func(s string) string { return strings.ReplaceAll(s, "SENTINEL", sentinel) }
			fixed := make([]entry, len(entries))
			for i, e := range entries {
				e.name, e.link = fix(e.name), fix(e.link)
				fixed[i] = e
			}
			if device {
				fixed[0].typ = tar.TypeFifo // archive/tar writes any number; patched below
			}
			arc := filepath.Join(base, "evil.tar")
			writeTar(t, arc, fixed)
			if device {
				patchDevice(t, arc)
			}
			dest := filepath.Join(base, "dest")
			_, err := unpackMode(t, arc, dest, mode, UnpackOptions{})
			if err == nil {
				t.Fatal("unpack succeeded")
			}
			t.Log(err)
			if want := `entry "` + fix(bad) + `"`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			checkOutside(t, base, sentinel)
		}
	}
}

// patchDevice turns the first entry of a tar into a character device with
// major 99999, which archive/tar itself would not write.
func patchDevice(t *testing.T, path string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	b[156] = tar.TypeChar
	copy(b[329:337], "0303237\x00") // devmajor 99999 in octal
	var sum int64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	copy(b[148:156], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
	os.WriteFile(path, b, 0o644)
}

func octal(v int64) string {
	s := ""
	for ; v > 0; v >>= 3 {
		s = string(rune('0'+v&7)) + s
	}
	return s
}

// checkOutside verifies the sentinel is empty and unchanged and base holds
// only what the test put there.
func checkOutside(t *testing.T, base, sentinel string) {
	t.Helper()
	if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
		t.Errorf("sentinel directory holds %d entries: written outside DIR", len(ents))
	}
	if st, err := os.Lstat(sentinel); err != nil || st.Mode() != os.ModeDir|0o755 {
		t.Errorf("sentinel changed: %v %v", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Join(base, "outside")); st == nil || st.Sys() == nil || nlink(st) != 1 {
		t.Errorf("file outside DIR gained a link")
	}
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		switch e.Name() {
		case "sentinel", "outside", "evil.tar", "evil.tar.berth", "dest":
		default:
			t.Errorf("%s written beside DIR", e.Name())
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(base)); len(ents) > 0 {
		for _, e := range ents {
			if e.Name() == "x" || e.Name() == "file" {
				t.Errorf("%s written two levels up", e.Name())
			}
		}
	}
}

// TestSafeReplacements are archives that look dangerous but are fine: a
// symlink pointing outside replaced by a file, a directory replaced by a
// symlink whose metadata must not be applied through it.
func TestSafeReplacements(t *testing.T) {
	cases := []struct {
		name    string
		entries []entry
	}{
		{"file replaces symlink", []entry{
			{name: "f", typ: tar.TypeSymlink, link: "SENTINEL/f"}, {name: "f", typ: tar.TypeReg, data: "inside"}}},
		{"hardlink replaces symlink", []entry{
			{name: "a", typ: tar.TypeReg, data: "a"},
			{name: "f", typ: tar.TypeSymlink, link: "SENTINEL"}, {name: "f", typ: tar.TypeLink, link: "a"}}},
		{"dir metadata not applied through a symlink", []entry{
			{name: "d/", typ: tar.TypeDir, mode: 0o700}, {name: "d", typ: tar.TypeSymlink, link: "SENTINEL"}}},
		{"dir replaces symlink", []entry{
			{name: "d", typ: tar.TypeSymlink, link: "SENTINEL"}, {name: "d/", typ: tar.TypeDir, mode: 0o700},
			{name: "d/file", typ: tar.TypeReg, data: "x"}}},
	}
	for mode, m := range unpackModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				base := t.TempDir()
				sentinel := filepath.Join(base, "sentinel")
				os.Mkdir(sentinel, 0o755)
				os.WriteFile(filepath.Join(base, "outside"), []byte("outside"), 0o644)
				entries := append([]entry{}, c.entries...)
				for i := range entries {
					entries[i].link = strings.ReplaceAll(entries[i].link, "SENTINEL", sentinel)
				}
				arc := filepath.Join(base, "evil.tar")
				writeTar(t, arc, entries)
				if _, err := unpackMode(t, arc, filepath.Join(base, "dest"), mode, UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				checkOutside(t, base, sentinel)
			})
		}
	}
}

func nlink(st os.FileInfo) uint64 {
	return uint64(st.Sys().(*syscall.Stat_t).Nlink)
}

// TestRootEntryNames unpacks archives whose first entry, the root, is
// named "/" (as umoci and others write it), "./" or ".": each is taken as
// the root and DEST gets its metadata, from a tar in every mode, from an
// OCI layer, and through Pack. Other absolute names are still refused
// (TestHostileEntries, "absolute").
func TestRootEntryNames(t *testing.T) {
	for _, root := range []string{"/", "./", ".", "//"} {
		entries := []entry{{name: root, typ: tar.TypeDir, mode: 0o750}, {name: "etc/", typ: tar.TypeDir, mode: 0o755},
			{name: "etc/f", typ: tar.TypeReg, data: "f"}}
		check := func(t *testing.T, dest string) {
			t.Helper()
			compareLists(t, map[string]string{"etc": "dir", "etc/f": "file f"}, listTree(t, dest))
			if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o750 {
				t.Errorf("dest mode %v (%v), want the root entry's 0750", st.Mode(), err)
			}
		}
		for mode, m := range unpackModes {
			t.Run(root+"/"+m.name, func(t *testing.T) {
				dir := t.TempDir()
				arc := filepath.Join(dir, "root.tar")
				writeTar(t, arc, entries)
				if _, err := unpackMode(t, arc, filepath.Join(dir, "dest"), mode, UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				check(t, filepath.Join(dir, "dest"))
			})
		}
		t.Run(root+"/oci layer", func(t *testing.T) {
			dir := t.TempDir()
			writeLayout(t, filepath.Join(dir, "layout"), []testImage{{ref: "t", layers: [][]entry{entries}, compress: "gzip"}}, false)
			if _, err := Unpack(filepath.Join(dir, "layout"), filepath.Join(dir, "dest"), UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			check(t, filepath.Join(dir, "dest"))
		})
		t.Run(root+"/packed", func(t *testing.T) {
			dir := t.TempDir()
			arc, img := filepath.Join(dir, "root.tar"), filepath.Join(dir, "img")
			writeTar(t, arc, entries)
			if err := Pack(arc, img, PackOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := Unpack(img, filepath.Join(dir, "dest"), UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			check(t, filepath.Join(dir, "dest"))
		})
	}
}

// TestDirMetaBounded: what an unpack keeps of its directories until the
// end is bounded (here lowered to 1 MiB): directories with large xattr
// records, or many layers' directory headers, are refused past it.
func TestDirMetaBounded(t *testing.T) {
	old := maxDirMeta
	maxDirMeta = 1 << 20
	defer func() { maxDirMeta = old }()
	big := strings.Repeat("x", 200<<10)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 8 {
		hdr := &tar.Header{Name: fmt.Sprintf("d%d/", i), Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.big": big}}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	dir := t.TempDir()
	src := filepath.Join(dir, "dirs.tar")
	if err := os.WriteFile(src, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(src, filepath.Join(dir, "dest"), UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), "metadata, kept until the end, passes 1 MiB") {
		t.Errorf("8 directories of 200 KiB xattrs: %v", err)
	}

	mg := newMerger(DefaultMaxEntries)
	var merr error
	for l := 0; l < 8 && merr == nil; l++ {
		merr = mg.add(l, 0, &tar.Header{Name: "d/", Typeflag: tar.TypeDir, PAXRecords: map[string]string{"comment": big}})
	}
	if merr == nil || !strings.Contains(merr.Error(), "headers, kept until the layers are merged, pass 1 MiB") {
		t.Errorf("8 layers' headers of 200 KiB: %v", merr)
	}

	// Many directories with long names and no records count too.
	buf.Reset()
	tw = tar.NewWriter(&buf)
	long := strings.Repeat("n", 200)
	for i := range 4000 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s%05d/", long, i), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	if err := os.WriteFile(src, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Unpack(src, filepath.Join(dir, "dest2"), UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), "metadata, kept until the end, passes 1 MiB") {
		t.Errorf("4000 directories of 205-byte names: %v", err)
	}
}

// TestImplicitDirsCount: the directories made for an entry whose parents
// the image does not list count as entries, so a few entries of deep
// paths cannot make millions of directories: one file nine directories
// deep is ten entries, within a limit of 10 and over one of 9.
func TestImplicitDirsCount(t *testing.T) {
	name := "d1/d2/d3/d4/d5/d6/d7/d8/d9/f"
	for mode, m := range unpackModes {
		for _, limit := range []int{10, 9} {
			t.Run(fmt.Sprintf("%s/%d", m.name, limit), func(t *testing.T) {
				dir := t.TempDir()
				arc := filepath.Join(dir, "deep.tar")
				writeTar(t, arc, []entry{{name: name, typ: tar.TypeReg, data: "x"}})
				_, err := unpackMode(t, arc, filepath.Join(dir, "dest"), mode, UnpackOptions{Limits: Limits{MaxEntries: limit}})
				if limit == 10 && err != nil {
					t.Fatalf("at the limit: %v", err)
				}
				if limit < 10 && (err == nil || !strings.Contains(err.Error(), "too many entries")) {
					t.Fatalf("over the limit: %v", err)
				}
			})
		}
	}
}

// TestMergeNodesBounded: the first pass over an image's layers keeps a
// node for every path, the parents an entry implies included, within the
// entry limit: one entry nine directories deep is ten paths, within a
// limit of 10 and over one of 9 — so a few entries of deep paths cannot
// make PID 1 keep millions of nodes.
func TestMergeNodesBounded(t *testing.T) {
	// The root, when a layer lists it, is a path the unpack counts too.
	for _, limit := range []int{4, 3} {
		mg := newMerger(limit)
		err := mg.add(0, 0, &tar.Header{Name: "./", Typeflag: tar.TypeDir})
		if err == nil {
			err = mg.add(0, 1, &tar.Header{Name: "a/b/f", Typeflag: tar.TypeReg})
		}
		if limit == 4 && err != nil {
			t.Errorf("the root and three paths at a limit of 4: %v", err)
		}
		if limit < 4 && !errors.Is(err, errTooManyEntries) {
			t.Errorf("the root and three paths at a limit of 3: %v", err)
		}
	}
	for _, limit := range []int{10, 9} {
		mg := newMerger(limit)
		err := mg.add(0, 0, &tar.Header{Name: "d1/d2/d3/d4/d5/d6/d7/d8/d9/f", Typeflag: tar.TypeReg})
		if limit == 10 && err != nil {
			t.Errorf("at the limit: %v", err)
		}
		if limit < 10 && (err == nil || !errors.Is(err, errTooManyEntries)) {
			t.Errorf("over the limit: %v", err)
		}
	}
}

// TestHeaderChainCapped: a chain of PAX headers before one entry is
// refused once it passes the header limit, while archive/tar reads it —
// not after it is read whole, which a few KB of compressed image could
// make gigabytes — in every mode, and in an image's layer.
func TestHeaderChainCapped(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, PAXRecords: map[string]string{"comment": strings.Repeat("c", 1000)}})
	tw.Write([]byte("x"))
	tw.Close()
	raw := buf.Bytes()
	size, err := strconv.ParseInt(strings.TrimRight(string(raw[124:136]), "\x00 "), 8, 64)
	if err != nil || raw[156] != tar.TypeXHeader {
		t.Fatalf("archive/tar wrote no PAX header first (%v)", err)
	}
	pax := raw[:512+(size+511)&^511]
	var chain []byte
	for range 100 { // 150 KB of headers
		chain = append(chain, pax...)
	}
	chain = append(chain, raw...)
	for mode, m := range unpackModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "chain.tar")
			os.WriteFile(arc, chain, 0o644)
			_, err := unpackMode(t, arc, filepath.Join(dir, "dest"), mode, UnpackOptions{Limits: Limits{MaxHeaderBytes: 16 << 10}})
			if err == nil || !strings.Contains(err.Error(), "header too large: over the limit of 16384") {
				t.Fatalf("150 KB of PAX headers under a limit of 16 KiB: %v", err)
			}
		})
	}
}

// TestLayerDirsCountOnce: an image's layers emit their directories after
// what they hold (and a tar may list them so), so each is made before its
// own entry comes: it counts once, as that entry. A directory and its
// file are two entries, within a limit of 2, in every mode.
func TestLayerDirsCountOnce(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, layout, []testImage{{ref: "t", arch: runtime.GOARCH, layers: [][]entry{{{name: "d1/", typ: tar.TypeDir}, {name: "d1/f", typ: regT, data: "x"}}}, compress: "zstd"}}, false)
	if _, err := Unpack(layout, filepath.Join(t.TempDir(), "dest"), UnpackOptions{Limits: Limits{MaxEntries: 2}}); err != nil {
		t.Errorf("layers: two entries under a limit of 2: %v", err)
	}
	for mode, m := range unpackModes {
		dir := t.TempDir()
		arc := filepath.Join(dir, "late.tar")
		writeTar(t, arc, []entry{{name: "d1/f", typ: regT, data: "x"}, {name: "d1/", typ: tar.TypeDir, mode: 0o755}})
		if _, err := unpackMode(t, arc, filepath.Join(dir, "dest"), mode, UnpackOptions{Limits: Limits{MaxEntries: 2}}); err != nil {
			t.Errorf("%s: a file, then its directory, under a limit of 2: %v", m.name, err)
		}
	}
}

// TestLayerSparseNotExpanded: a sparse file in an image's layer claiming
// 2^50 bytes (one stored) is not read with its holes filled between two
// headers — which would spin through a petabyte of zeros — and a header
// after it is still read: the image is refused for the size it claims,
// at once.
func TestLayerSparseNotExpanded(t *testing.T) {
	raw := sparseTar(t, "big", 1<<50, "1\n0\n1\n", []byte("x"))
	raw = raw[:len(raw)-1024] // its end blocks: another entry follows
	raw = append(raw, tarBytes(t, []entry{{name: "after", typ: regT, data: "y"}})...)
	layout := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, layout, []testImage{{ref: "t", arch: runtime.GOARCH, raw: [][]byte{raw}, compress: "zstd"}}, false)
	done := make(chan error, 1)
	go func() {
		_, err := Unpack(layout, filepath.Join(t.TempDir(), "dest"), UnpackOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, errTooManyBytes) {
			t.Errorf("a layer's sparse file of 2^50 bytes: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing check
		t.Fatal("the unpack is still reading the sparse file's holes")
	}
}
