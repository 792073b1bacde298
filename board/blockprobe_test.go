package board

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool runs a host tool the tests need (e2fsprogs, dosfstools, gdisk:
// make host-deps installs them) and fails the test when it is missing or
// fails.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is missing (make host-deps installs it): %v", name, err)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sparseFile makes an empty file of size bytes.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestProbeFS reads filesystems made by the real mkfs tools: type, label
// and UUID as blkid reports them.
func TestProbeFS(t *testing.T) {
	const uuid = "2f3b1c9a-8d4e-4f11-9a7b-0123456789ab"
	tests := []struct {
		name string
		size int64
		mkfs []string // the tool and its arguments, the image appended
		want FSInfo
	}{
		{"ext4", 8 << 20, []string{"mkfs.ext4", "-q", "-F", "-L", "data", "-U", uuid}, FSInfo{"ext4", "data", uuid}},
		{"ext4 label of 16 bytes", 8 << 20, []string{"mkfs.ext4", "-q", "-F", "-L", "0123456789abcdef", "-U", uuid}, FSInfo{"ext4", "0123456789abcdef", uuid}},
		{"ext3", 8 << 20, []string{"mkfs.ext3", "-q", "-F", "-L", "old", "-U", uuid}, FSInfo{"ext3", "old", uuid}},
		{"ext2 without label", 8 << 20, []string{"mkfs.ext2", "-q", "-F", "-U", uuid}, FSInfo{"ext2", "", uuid}},
		{"vfat (FAT16)", 16 << 20, []string{"mkfs.vfat", "-n", "USBDATA", "-i", "1234ABCD"}, FSInfo{"vfat", "USBDATA", "1234-ABCD"}},
		{"vfat (FAT32)", 64 << 20, []string{"mkfs.vfat", "-F", "32", "-n", "BOOT", "-i", "deadbeef"}, FSInfo{"vfat", "BOOT", "DEAD-BEEF"}},
		{"vfat without label", 16 << 20, []string{"mkfs.vfat", "-i", "00000001"}, FSInfo{"vfat", "", "0000-0001"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := sparseFile(t, tc.size)
			tool(t, tc.mkfs[0], append(tc.mkfs[1:], img)...)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, ok := probeFS(f)
			if !ok || got != tc.want {
				t.Errorf("probeFS = %+v, %v; want %+v", got, ok, tc.want)
			}
			if blkid, err := exec.Command("blkid", "-o", "value", "-s", "UUID", img).Output(); err == nil && strings.TrimSpace(string(blkid)) != tc.want.UUID {
				t.Errorf("blkid says UUID %q, want %q", blkid, tc.want.UUID)
			}
		})
	}
}

// TestProbeFSNotAFilesystem: zeroes, random bytes, an MBR and a GPT disk
// are no filesystem, and a short file is no error.
func TestProbeFSNotAFilesystem(t *testing.T) {
	gpt := sparseFile(t, 8<<20)
	tool(t, "sgdisk", "-n", "1:2048:+2M", "-c", "1:data", gpt)
	gptData, _ := os.ReadFile(gpt)
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xAA
	random := make([]byte, 8192)
	for i := range random {
		random[i] = byte(i*7919 + i>>3)
	}
	for name, data := range map[string][]byte{
		"zeroes": make([]byte, 1<<20), "short": make([]byte, 100), "mbr": mbr, "random": random, "gpt disk": gptData,
	} {
		if info, ok := probeFS(bytes.NewReader(data)); ok {
			t.Errorf("%s: probed as %+v", name, info)
		}
	}
}

// TestReadGPT reads a GPT made by sgdisk, behind its protective MBR and
// behind a hybrid one: numbers, names (UTF-16, past ASCII too), unique
// GUIDs and blocks, as sgdisk itself shows them.
func TestReadGPT(t *testing.T) {
	const g1, g3 = "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "6A898CC3-1DD2-11B2-99A6-080020736631"
	for _, mbr := range [][]string{nil, {"-h", "1"}} {
		img := sparseFile(t, 16<<20)
		tool(t, "sgdisk", append([]string{
			"-n", "1:2048:+2M", "-c", "1:data", "-u", "1:" + g1,
			"-n", "3:0:+2M", "-c", "3:Daten-ü-€-𝄞", "-u", "3:" + g3,
			img}, mbr...)...)
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		parts, err := readGPT(bytes.NewReader(data), 512, int64(len(data)))
		if err != nil {
			t.Fatalf("sgdisk %v: %v", mbr, err)
		}
		want := []GPTPartition{{1, "data", strings.ToLower(g1), 2048, 6143}, {3, "Daten-ü-€-𝄞", strings.ToLower(g3), 6144, 10239}}
		if len(parts) != len(want) {
			t.Fatalf("sgdisk %v: partitions %+v, want %+v", mbr, parts, want)
		}
		for i := range want {
			if parts[i] != want[i] {
				t.Errorf("sgdisk %v: partition %d: %+v, want %+v", mbr, i, parts[i], want[i])
			}
		}
		info := tool(t, "sgdisk", "-i", "3", img)
		if !strings.Contains(info, "Partition unique GUID: "+g3) {
			t.Errorf("sgdisk -i 3 does not show %s:\n%s", g3, info)
		}
	}
}

// TestReadGPTHostile: a GPT whose fields lie, or that the kernel would
// not read (no protective MBR, a header not at block 1, entries not of
// 128 bytes), is refused with an error naming the field, without reading
// or allocating what they claim; an entry the kernel would skip is
// skipped.
func TestReadGPTHostile(t *testing.T) {
	img := sparseFile(t, 8<<20)
	tool(t, "sgdisk", "-n", "1:2048:+2M", "-c", "1:data", img)
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// edit changes the header (LBA 1) and, unless keepCRC, recomputes
	// its CRC so that only the edited field is wrong.
	edit := func(f func(h []byte), keepCRC bool) []byte {
		d := append([]byte(nil), good...)
		h := d[512:1024]
		f(h)
		if !keepCRC {
			size := le.Uint32(h[12:])
			if size > 512 {
				size = 512
			}
			c := append([]byte(nil), h[:size]...)
			clear(c[16:20])
			le.PutUint32(h[16:], crc32.ChecksumIEEE(c))
		}
		return d
	}
	// editDisk changes a copy of the disk: its block 0 (the protective
	// MBR sgdisk wrote: partition 1 of type 0xEE from block 1), its
	// header and its entries (16 KiB from LBA 2), then recomputes both
	// CRCs.
	editDisk := func(f func(mbr, h, e []byte)) []byte {
		d := append([]byte(nil), good...)
		h, e := d[512:1024], d[1024:1024+16384]
		f(d[:512], h, e)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(e))
		c := append([]byte(nil), h[:92]...)
		clear(c[16:20])
		le.PutUint32(h[16:], crc32.ChecksumIEEE(c))
		return d
	}
	entry1 := func(f func(e []byte)) []byte { return editDisk(func(_, _, e []byte) { f(e) }) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"header CRC", edit(func(h []byte) { h[60] ^= 1 }, true), "header CRC"},
		{"entries CRC", edit(func(h []byte) { le.PutUint32(h[88:], le.Uint32(h[88:])^1) }, false), "entries' CRC"},
		{"a million entries", edit(func(h []byte) { le.PutUint32(h[80:], 1<<20) }, false), "more than 1048576 bytes"},
		{"entries of 2^32-8 bytes", edit(func(h []byte) { le.PutUint32(h[84:], 1<<32-8) }, false), "entry size"},
		{"entries of 0 bytes", edit(func(h []byte) { le.PutUint32(h[84:], 0) }, false), "entry size"},
		{"header of 4 GiB", edit(func(h []byte) { le.PutUint32(h[12:], 1<<32-1) }, true), "header size"},
		{"entries past the end", edit(func(h []byte) { le.PutUint64(h[72:], 1<<40) }, false), "read 128 entries"},
		{"entries at block 2^63", edit(func(h []byte) { le.PutUint64(h[72:], 1<<63) }, false), "entries at block"},
		{"no signature", edit(func(h []byte) { h[0] = 'X' }, false), "no GPT"},
		{"cut after the header", good[:1024], "read 128 entries"},
		{"plain MBR", editDisk(func(m, _, _ []byte) { m[446+4] = 0x83 }), "no protective MBR"},
		{"no MBR signature", editDisk(func(m, _, _ []byte) { m[510] = 0 }), "no protective MBR"},
		{"0xEE partition from block 2", editDisk(func(m, _, _ []byte) { le.PutUint32(m[446+8:], 2) }), "no protective MBR"},
		{"header at block 2", edit(func(h []byte) { le.PutUint64(h[24:], 2) }, false), "says it is at block 2"},
		{"entries of 256 bytes", editDisk(func(_, h, e []byte) {
			le.PutUint32(h[80:], 64) // the same 16 KiB, entry 1 the same
			le.PutUint32(h[84:], 256)
			clear(e[128:])
		}), "entry size 256, not 128"},
		{"usable past the end", edit(func(h []byte) { le.PutUint64(h[48:], 16384) }, false), "usable blocks 34-16384, on a disk of blocks 0-16383"},
		{"usable first after last", edit(func(h []byte) { le.PutUint64(h[40:], le.Uint64(h[48:])+1) }, false), "usable blocks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readGPT(bytes.NewReader(tc.data), 512, int64(len(good)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	if _, err := readGPT(bytes.NewReader(good), 4096, int64(len(good))); err == nil {
		t.Error("a 512-byte-sector GPT read with 4096-byte blocks was accepted")
	}
	// Entries the kernel skips (is_pte_valid) are skipped, the others
	// kept; entries outside the usable blocks but on the disk are the
	// kernel's partitions, and berth's.
	for _, tc := range []struct {
		name string
		data []byte
		want []uint64 // entry 1's first and last block; none: skipped
	}{
		{"entry ending before its start", entry1(func(e []byte) { le.PutUint64(e[40:], 2047) }), nil},
		{"entry past the disk's end", entry1(func(e []byte) { le.PutUint64(e[40:], 16384) }), nil},
		{"entry at the disk's last block", entry1(func(e []byte) { le.PutUint64(e[40:], 16383) }), []uint64{2048, 16383}},
		{"entry before the usable blocks", entry1(func(e []byte) { le.PutUint64(e[32:], 33) }), []uint64{33, 6143}},
	} {
		parts, err := readGPT(bytes.NewReader(tc.data), 512, int64(len(good)))
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == nil && len(parts) != 0:
			t.Errorf("%s: %+v, want the entry skipped", tc.name, parts)
		case tc.want != nil && (len(parts) != 1 || parts[0].First != tc.want[0] || parts[0].Last != tc.want[1]):
			t.Errorf("%s: %+v, want blocks %v", tc.name, parts, tc.want)
		}
	}
}

// FuzzProbeBlock: whatever a device holds, probing it neither panics nor
// allocates beyond its bounds.
func FuzzProbeBlock(f *testing.F) {
	f.Add(make([]byte, 4096))
	d := make([]byte, 2048)
	binary.LittleEndian.PutUint16(d[1024+56:], extMagic)
	f.Add(d)
	f.Fuzz(func(t *testing.T, data []byte) {
		probeFS(bytes.NewReader(data))
		for _, s := range []int64{512, 4096} {
			readGPT(bytes.NewReader(data), s, int64(len(data)))
		}
	})
}
