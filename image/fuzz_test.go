package image

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// Fuzz targets, run briefly by `make test`:
//
//	go test ./image/ -run '^$' -fuzz FuzzIndex -fuzztime 10s
//	go test ./image/ -run '^$' -fuzz FuzzUnpackTar -fuzztime 10s
//	go test ./image/ -run '^$' -fuzz FuzzOCIManifest -fuzztime 10s
//	go test ./image/ -run '^$' -fuzz FuzzSparseMap -fuzztime 10s
//	go test ./image/ -run '^$' -fuzz FuzzDecodeJSON -fuzztime 10s (in jsonfuzz_test.go)
//
// Their committed corpora are in testdata/fuzz/; a plain `go test` runs
// every corpus entry once. Each keeps its per-input work small (one
// directory per process, made once; a shared zstd encoder): a target that
// takes milliseconds an input does not fuzz, it spends its time minimizing.

// FuzzIndex parses index payloads, their checksum made right first (a
// mutation would otherwise only ever test the checksum): no panic, and
// what parses re-encodes to an index that parses to the same entries and
// encodes to the same bytes, and can be walked.
func FuzzIndex(f *testing.F) {
	ix, err := mmapfs.BuildIndex([]mmapfs.IndexItem{
		{Path: "s", Entry: mmapfs.Entry{Type: mmapfs.TypeReg, Mode: 0o755, Size: 1 << 30, Sparse: true, Stored: 1024, MTime: 1, MTimeNs: 5}},
	}, 100)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mmapfs.AppendIndexFrame(nil, ix)[8:])
	f.Add([]byte("BRTI"))
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4 {
			b = append([]byte{}, b...) // the input is not ours to change
			binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		}
		ix, err := mmapfs.ParseIndex(b)
		if err != nil {
			return
		}
		enc := mmapfs.AppendIndexFrame(nil, ix)
		again, err := mmapfs.ParseIndex(enc[8:])
		if err != nil {
			t.Fatalf("re-encoded index refused: %v", err)
		}
		if !reflect.DeepEqual(again, ix) {
			t.Fatalf("re-encoded index differs:\n%+v\n%+v", again, ix)
		}
		if !bytes.Equal(mmapfs.AppendIndexFrame(nil, again), enc) {
			t.Fatal("encoding is not stable")
		}
		for i, e := range ix.Entries {
			if e.Type == mmapfs.TypeDir {
				lo, hi := ix.Children(i)
				for j := lo; j < hi; j++ {
					if ix.Lookup(i, ix.Entries[j].Name) != j {
						t.Fatalf("lookup of child %d of %d", j, i)
					}
				}
			}
			_ = ix.Path(i)
		}
	})
}

// FuzzUnpackTar unpacks the tar a small script describes (see
// scriptTar), plain or framed as a berth image, into a missing DEST or an
// empty one: no panic; nothing is written outside DEST; a failed unpack
// leaves DEST as it was (all or nothing) and no staging directory. The
// script keeps inputs small, so that the fuzzer's minimization, which
// tries about n² variants of an n-byte input, takes moments, and every
// header it describes has a valid checksum, so mutations reach the
// unpacker instead of stopping at archive/tar.
func FuzzUnpackTar(f *testing.F) {
	for _, s := range []string{
		"5 a/\n0 a/b b\n2 l a",
		"2 l ../sentinel\n0 l/x x",
		"1 h ../outside",
		"5 d/\n0 d x\n0 d/x",
		"S s 100000 2,10,3,70000,2 abcde",
		"xSCHILY.xattr.user.x=1\n0 f data",
		"5 /\n0 /etc/passwd x",
		"3 dev/null 1:3\n6 fifo\n2 abs /etc/shadow\n1 hl abs",
	} {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	base := fuzzDir(f)
	sentinel, outside, src, dest := filepath.Join(base, "sentinel"), filepath.Join(base, "outside"), filepath.Join(base, "in"), filepath.Join(base, "dest")
	if err := os.Mkdir(sentinel, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(outside, []byte("outside"), 0o644); err != nil {
		f.Fatal(err)
	}
	lim := Limits{MaxEntries: 200, MaxBytes: 1 << 20, MaxHeaderBytes: 64 << 10, MaxWindow: 1 << 20, MaxFrameBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, script []byte, framed, empty bool) {
		b := scriptTar(script)
		if framed { // frames of 300 to 1068 bytes: headers across frames and whole in one (fastHeader)
			b = berthFromTar(t, b, 300+256*(len(script)%4))
		}
		if err := os.WriteFile(src, b, 0o644); err != nil {
			t.Fatal(err)
		}
		defer removeTree(dest)
		var before unix.Stat_t
		if empty {
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			unix.Stat(dest, &before)
		}
		_, err := Unpack(src, dest, UnpackOptions{Limits: lim, Workers: 2, Writers: 2})
		if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
			t.Fatal("written into the sentinel outside DEST")
		}
		if got, _ := os.ReadFile(outside); string(got) != "outside" {
			t.Fatal("file outside DEST changed")
		}
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if n := e.Name(); n != "sentinel" && n != "outside" && n != "in" && n != "dest" {
				t.Fatalf("%s written beside DEST", n)
			}
		}
		if err != nil {
			checkFailedDest(t, dest, &before)
		}
	})
}

// scriptTar builds a tar from a script, one entry a line, its fields
// separated by spaces; the first field is a tar type flag, the others
//
//	NAME [DATA]             0 (and any other type): a file with DATA
//	NAME                    5: a directory (6: a fifo)
//	NAME TARGET             1, 2: a hardlink, a symlink
//	NAME MAJOR:MINOR        3, 4: a device
//	NAME SIZE MAP DATA      S: a sparse file (PAX format 1.0), MAP the
//	                        map's numbers separated by commas
//	KEY=VALUE               x: a PAX record for the next entry
//
// Entries archive/tar refuses to write are left out; the tar is not
// closed, so its end can be any entry.
func scriptTar(script []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var pax map[string]string
	for line := range bytes.SplitSeq(script, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == 'x' {
			k, v, _ := strings.Cut(strings.TrimLeft(string(line[1:]), " "), "=")
			if pax == nil {
				pax = make(map[string]string)
			}
			pax[k] = v
			continue
		}
		typ, f := line[0], strings.SplitN(string(line[1:]), " ", 5)[1:]
		arg := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		hdr := &tar.Header{Typeflag: typ, Name: arg(0), Mode: 0o644, PAXRecords: pax}
		pax = nil
		switch typ {
		case 'S':
			size, _ := strconv.ParseInt(arg(1), 10, 64)
			mapText := strings.ReplaceAll(arg(2), ",", "\n") + "\n"
			block := append([]byte(mapText), make([]byte, (512-len(mapText)%512)%512)...)
			h, err := sparseHeaders(&tar.Header{Name: arg(0), Size: size, Mode: 0o644}, int64(len(block)+len(arg(3))))
			if err == nil {
				tw.Flush()
				buf.Write(h)
				buf.Write(block)
				buf.WriteString(arg(3))
				buf.Write(make([]byte, (512-len(arg(3))%512)%512))
			}
			continue
		case tar.TypeLink, tar.TypeSymlink:
			hdr.Linkname = arg(1)
		case tar.TypeChar, tar.TypeBlock:
			maj, min, _ := strings.Cut(arg(1), ":")
			hdr.Devmajor, _ = strconv.ParseInt(maj, 10, 64)
			hdr.Devminor, _ = strconv.ParseInt(min, 10, 64)
		case tar.TypeDir, tar.TypeFifo:
		default:
			hdr.Size = int64(len(arg(1)))
		}
		if tw.WriteHeader(hdr) == nil {
			io.WriteString(tw, arg(1)[:hdr.Size])
		}
	}
	tw.Flush()
	return buf.Bytes()
}

// checkFailedDest fails unless a failed unpack left dest as it was:
// missing (before is zero), or the same empty directory.
func checkFailedDest(t *testing.T, dest string, before *unix.Stat_t) {
	var st unix.Stat_t
	err := unix.Stat(dest, &st)
	if before.Ino == 0 {
		if err == nil {
			t.Fatal("a failed unpack left DEST behind")
		}
		return
	}
	ents, _ := os.ReadDir(dest)
	if err != nil || st.Ino != before.Ino || len(ents) != 0 {
		t.Fatalf("a failed unpack changed the empty DEST: %d entries (%v)", len(ents), err)
	}
}

// fuzzDir is a directory for one fuzzing process, on a tmpfs when
// /dev/shm is one (an unpack syncs its filesystem), removed at the end.
func fuzzDir(f *testing.F) string {
	parent := ""
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "berth-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { removeTree(dir) })
	return dir
}

// fuzzLayer is the one layer blob FuzzOCIManifest's layouts hold: an
// empty tar.
var fuzzLayer = make([]byte, 1024)

// FuzzOCIManifest resolves layouts whose index.json, manifest and config
// are arbitrary JSON, stored as blobs named by their digests beside one
// real layer: no panic, and an accepted layout names an image whose
// manifest blob is in the store and hashes to its digest, whose layers
// (at most MaxLayers) are blobs in the store named by valid digests, and
// whose config is for the platform asked for. The documents may name one
// another by placeholders (see ociTokens), which keeps inputs small — the
// fuzzer's minimization tries about n² variants of an n-byte input — and
// lets mutations keep every digest right.
func FuzzOCIManifest(f *testing.F) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@l"]}}`)
	man := []byte(`{"schemaVersion":2,"config":{"mediaType":"$C","digest":"@c","size":#c},"layers":[{"mediaType":"$L","digest":"@l","size":#l}]}`)
	idx := []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"$M","digest":"@m","size":#m,"annotations":{"org.opencontainers.image.ref.name":"t"}}]}`)
	f.Add(idx, man, cfg, "linux/amd64")
	f.Add([]byte(`{"manifests":[{"mediaType":"$M","digest":"@m","size":#m,"platform":{"os":"linux","architecture":"arm64"}}]}`), man, cfg, "linux/arm64")
	f.Add([]byte(`{"manifests":[{"mediaType":"$M","digest":"@m","size":#m}]}`), man, bytes.Replace(cfg, []byte("amd64"), []byte("arm64"), 1), "linux/arm64")
	f.Add(idx, bytes.Replace(man, []byte(`"digest":"@l"`), []byte(`"digest":"@0"`), 1), cfg, "")
	f.Add([]byte(`[{"Config":"c.json","RepoTags":["a:b"],"Layers":["l/layer.tar"]}]`), man, cfg, "docker")
	dir := fuzzDir(f)
	blobs := filepath.Join(dir, "blobs", "sha256")
	f.Fuzz(func(t *testing.T, index, manifest, config []byte, platform string) {
		if err := os.MkdirAll(blobs, 0o755); err != nil {
			t.Fatal(err)
		}
		defer func() {
			for _, n := range []string{"blobs", "index.json", "oci-layout", "manifest.json", "c.json", "l"} {
				os.RemoveAll(filepath.Join(dir, n))
			}
		}()
		index, manifest, config = ociTokens(index, manifest, config)
		for _, b := range [][]byte{index, manifest, config, fuzzLayer} {
			os.WriteFile(filepath.Join(blobs, sha(b)[7:]), b, 0o644)
		}
		if platform == "docker" {
			os.WriteFile(filepath.Join(dir, "manifest.json"), index, 0o644)
			os.WriteFile(filepath.Join(dir, "c.json"), config, 0o644)
			os.MkdirAll(filepath.Join(dir, "l"), 0o755)
			os.WriteFile(filepath.Join(dir, "l", "layer.tar"), fuzzLayer, 0o644)
			platform = ""
		} else {
			os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
			os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644)
		}
		in, err := openInput(dir, platform, Limits{}.withDefaults())
		if err != nil {
			return
		}
		defer in.close()
		checkAccepted(t, in, platform)
	})
}

// ociTokens replaces FuzzOCIManifest's placeholders: $M, $I, $C and $L
// by the media types of a manifest, an index, a config and a tar layer;
// @0 by the digest of a blob the store does not hold; @l and #l by the
// layer's digest and size; in the manifest and the index, @c and #c by
// the config's; in the index, @m and #m by the manifest's.
func ociTokens(index, manifest, config []byte) ([]byte, []byte, []byte) {
	r := []string{"$M", mediaManifest, "$I", mediaIndex, "$C", "application/vnd.oci.image.config.v1+json",
		"$L", "application/vnd.oci.image.layer.v1.tar", "@0", "sha256:" + strings.Repeat("0", 64),
		"@l", sha(fuzzLayer), "#l", itoa(len(fuzzLayer))}
	config = []byte(strings.NewReplacer(r...).Replace(string(config)))
	r = append(r, "@c", sha(config), "#c", itoa(len(config)))
	manifest = []byte(strings.NewReplacer(r...).Replace(string(manifest)))
	r = append(r, "@m", sha(manifest), "#m", itoa(len(manifest)))
	index = []byte(strings.NewReplacer(r...).Replace(string(index)))
	return index, manifest, config
}

// checkAccepted checks what openInput promises of an image it accepted.
func checkAccepted(t *testing.T, in *input, platform string) {
	if in.format == FormatOCI {
		name, err := blobPath(in.digest)
		if err != nil {
			t.Fatalf("accepted image digest %q: %v", in.digest, err)
		}
		if _, err := readFile(in.store, name, in.digest); err != nil {
			t.Fatalf("the accepted manifest %s: %v", in.digest, err)
		}
	} else if checkDigestSyntax(in.digest) != nil {
		t.Fatalf("accepted image digest %q", in.digest)
	}
	if len(in.layers) > MaxLayers {
		t.Fatalf("accepted %d layers", len(in.layers))
	}
	for _, l := range in.layers {
		if checkDigestSyntax(l.diffID) != nil || (l.digest != "" && checkDigestSyntax(l.digest) != nil) {
			t.Fatalf("accepted layer %+v", l)
		}
		if !in.store.has(l.name) {
			t.Fatalf("accepted layer %+v is not in the store", l)
		}
	}
	want, err := ParsePlatform(platform)
	if err != nil || !want.matches(in.platf) {
		t.Fatalf("accepted an image for %s when %q was asked (%v)", in.platf, platform, err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// FuzzSparseMap parses sparse map blocks: no panic; an accepted map is in
// order and inside the file, re-encodes to the same segments, and
// archive/tar reads the same file from it (data where the segments are,
// zeros elsewhere); a map it refuses as bad, archive/tar refuses too.
func FuzzSparseMap(f *testing.F) {
	f.Add([]byte("3\n49999872\n4096\n89997312\n4096\n104857600\n0\n"), int64(104857600))
	f.Add([]byte("2\n0\n5\n100\n3\n"), int64(200))
	f.Add([]byte("0\n"), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		if size < 0 {
			return
		}
		segs, blockLen, err := mmapfs.ParseSparseMap(b, size)
		if err == nil {
			if blockLen%512 != 0 || blockLen > len(b) || mmapfs.CheckSegments(segs, size) != nil {
				t.Fatalf("accepted %v, block of %d bytes, from %d bytes", segs, blockLen, len(b))
			}
			again, n, err := mmapfs.ParseSparseMap(mmapfs.AppendSparseMap(nil, segs), size)
			if err != nil || !reflect.DeepEqual(again, segs) || n > blockLen {
				t.Fatalf("re-encoded map: %v %d %v, want %v", again, n, err, segs)
			}
		}
		if size > 1<<16 || len(b) > 1<<16 || errors.Is(err, mmapfs.ErrSparseShort) {
			return // archive/tar would read holes for long; a short map is no map
		}
		compareWithArchiveTar(t, b, size, segs, blockLen, err)
	})
}

// compareWithArchiveTar reads map block b of a file of size bytes with
// archive/tar, its segments holding bytes 1, 2, ...: archive/tar must
// refuse it when ParseSparseMap did (perr), and otherwise read the file
// ParseSparseMap's segments describe.
func compareWithArchiveTar(t *testing.T, b []byte, size int64, segs []mmapfs.Segment, blockLen int, perr error) {
	block := append([]byte{}, b...)
	if perr == nil {
		block = block[:blockLen]
	}
	block = append(block, make([]byte, (512-len(block)%512)%512)...)
	data := bytes.Repeat([]byte{7}, int(mmapfs.SegmentBytes(segs)))
	h, err := sparseHeaders(&tar.Header{Name: "f", Size: size, Mode: 0o644}, int64(len(block)+len(data)))
	if err != nil {
		t.Fatal(err)
	}
	arc := append(append(h, block...), data...)
	arc = append(arc, make([]byte, (512-len(arc)%512)%512+1024)...)
	tr := tar.NewReader(bytes.NewReader(arc))
	_, err = tr.Next()
	var got []byte
	if err == nil {
		got, err = io.ReadAll(tr)
	}
	if perr != nil {
		if err == nil {
			t.Fatalf("archive/tar accepts a map berth refuses (%v): %q", perr, b)
		}
		return
	}
	want := make([]byte, size)
	for _, s := range segs {
		copy(want[s.Off:s.Off+s.Len], data)
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("archive/tar reads the map %v differently (%v)", segs, err)
	}
}
