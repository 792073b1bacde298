package board

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

// superOptions returns the superblock options of the mount at point.
func superOptions(t *testing.T, point string) string {
	t.Helper()
	mounts, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Point == point {
			return mounts[i].Super
		}
	}
	t.Fatalf("nothing mounted at %s", point)
	return ""
}

// mountOptions returns the per-mount options and the type of the mount at
// point, from /proc/self/mountinfo.
func mountOptions(t *testing.T, point string) (opts, fstype string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != point {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				opts, fstype = f[5], f[i+1]
			}
		}
	}
	if fstype == "" {
		t.Fatalf("nothing mounted at %s", point)
	}
	return opts, fstype
}

// loopDevice attaches img to a free loop device, partitions scanned
// (losetup -P), and detaches it when the test ends.
func loopDevice(t *testing.T, img string) string {
	t.Helper()
	dev := strings.TrimSpace(tool(t, "losetup", "--find", "--show", "--partscan", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// randomName is a label no other device of this machine carries.
func randomName(t *testing.T, prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestParseDevice: each way of naming a device, and what is refused.
func TestParseDevice(t *testing.T) {
	good := map[string][2]string{
		"LABEL=data":     {"LABEL", "data"},
		"LABEL=my data":  {"LABEL", "my data"},
		"PARTLABEL=Dätä": {"PARTLABEL", "Dätä"},
		"UUID=2f3b1c9a-8d4e-4f11-9a7b-0123456789AB": {"UUID", "2f3b1c9a-8d4e-4f11-9a7b-0123456789AB"},
		"UUID=1234-abcd": {"UUID", "1234-abcd"},
		"PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4": {"PARTUUID", "0fc63daf-8483-4772-8e79-3d69d8477de4"},
		"/dev/mmcblk0p2": {"", "/dev/mmcblk0p2"},
	}
	for in, want := range good {
		k, v, err := ParseDevice(in)
		if err != nil || k != want[0] || v != want[1] {
			t.Errorf("ParseDevice(%q) = %q, %q, %v; want %q", in, k, v, err, want)
		}
	}
	bad := map[string]string{
		"LABEL=":                               "want 1-255",
		"LABEL=" + strings.Repeat("x", 256):    "want 1-255",
		"LABEL=a\nb":                           "printable",
		"PARTLABEL=" + strings.Repeat("ü", 37): "want 1-36",
		"UUID=1234":                            "8-4-4-4-12",
		"UUID=zzzzzzzz-8d4e-4f11-9a7b-0123456789ab": "8-4-4-4-12",
		"PARTUUID=1234-abcd":                        "8-4-4-4-12 hex digits",
		"ID=data":                                   "unknown kind before '='",
		"data":                                      "clean path under /dev",
		"/dev/../etc/passwd":                        "clean path under /dev",
		"/mnt/disk":                                 "clean path under /dev",
		"/dev/sda1/":                                "clean path under /dev",
	}
	for in, want := range bad {
		if _, _, err := ParseDevice(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDevice(%q): %v, want an error saying %q", in, err, want)
		}
	}
}

// TestWaitDevice finds loop devices on this host's real sysfs and devtmpfs
// by label, UUID, GPT partition name and GUID, and path; refuses a name
// two devices carry; and reports a missing one after its timeout.
func TestWaitDevice(t *testing.T) {
	label := randomName(t, "bt")
	const uuid = "7d1c6a52-3b8e-4e0f-a1d2-c3b4a5968778"
	fsImg := sparseFile(t, 16<<20)
	tool(t, "mkfs.ext4", "-q", "-F", "-L", label, "-U", uuid, fsImg)
	fsDev := loopDevice(t, fsImg)

	partName := randomName(t, "part-")
	const partUUID = "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081"
	disk := sparseFile(t, 32<<20)
	tool(t, "sgdisk", "-n", "1:2048:+4M", "-c", "1:other", "-n", "2:0:+8M", "-c", "2:"+partName, "-u", "2:"+partUUID, disk)
	diskDev := loopDevice(t, disk)
	tool(t, "partx", "-u", diskDev) // in case the scan raced the partitioning

	tests := []struct{ name, want string }{
		{"LABEL=" + label, fsDev},
		{"UUID=" + strings.ToUpper(uuid), fsDev},
		{fsDev, fsDev},
		{"PARTLABEL=" + partName, diskDev + "p2"},
		{"PARTUUID=" + partUUID, diskDev + "p2"},
	}
	for _, tc := range tests {
		got, _, err := WaitDevice(tc.name, 5*time.Second)
		if err != nil || got.Path != tc.want {
			t.Errorf("WaitDevice(%s) = %+v, %v; want %s", tc.name, got, err, tc.want)
		}
		if tc.name == "LABEL="+label && (got.FS == nil || *got.FS != FSInfo{"ext4", label, uuid}) {
			t.Errorf("WaitDevice(%s): filesystem %+v", tc.name, got.FS)
		}
	}

	start := time.Now()
	_, _, err := WaitDevice("LABEL="+randomName(t, "no"), 300*time.Millisecond)
	if !errors.Is(err, ErrDeviceMissing) || !strings.Contains(err.Error(), "missing: waited 300ms for LABEL=no") {
		t.Errorf("missing device: %v", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("gave up after %s, before its timeout", time.Since(start))
	}

	twin := sparseFile(t, 16<<20)
	tool(t, "mkfs.ext4", "-q", "-F", "-L", label, twin)
	twinDev := loopDevice(t, twin)
	_, _, err = WaitDevice("LABEL="+label, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "refusing to guess") || !strings.Contains(err.Error(), twinDev) {
		t.Errorf("two devices labelled %s: %v", label, err)
	}
}

// TestMountFS mounts an ext4 loop device with noatime, nodev and nosuid,
// and errors=remount-ro over its superblock's errors=panic, and reports
// the kernel's own words for a filesystem of another type.
func TestMountFS(t *testing.T) {
	img := sparseFile(t, 16<<20)
	tool(t, "mkfs.ext4", "-q", "-F", "-L", "data", img)
	tool(t, "tune2fs", "-e", "panic", img)
	dev := loopDevice(t, img)
	// xfs: a type this host's kernel has built in.
	_, err := MountFS(dev, filepath.Join(t.TempDir(), "xfs"), "xfs")
	if err == nil || !strings.Contains(err.Error(), "as xfs: invalid argument (kernel: ") || !strings.Contains(err.Error(), "XFS ("+filepath.Base(dev)+")") {
		t.Errorf("ext4 mounted as xfs: %v", err)
	}
	target := filepath.Join(t.TempDir(), "data")
	if _, err := MountFS(dev, target, "ext4"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	opts, fstype := mountOptions(t, target)
	for _, opt := range []string{"noatime", "nodev", "nosuid"} {
		if !strings.Contains(","+opts+",", ","+opt+",") {
			t.Errorf("mounted with %q, lacking %s", opts, opt)
		}
	}
	if fstype != "ext4" {
		t.Errorf("mounted as %s", fstype)
	}
	if super := superOptions(t, target); !strings.Contains(","+super+",", ",errors=remount-ro,") {
		t.Errorf("superblock options %q: the disk's errors=panic stands", super)
	}
	// errors=panic among the superblock's mount options is overridden
	// too; a disk that asks for no panic keeps its own errors=.
	for _, tc := range []struct {
		tune     []string
		override bool
	}{
		{[]string{"-E", "mount_opts=errors=panic"}, true},
		{[]string{"-e", "continue"}, false},
	} {
		img := sparseFile(t, 16<<20)
		tool(t, "mkfs.ext4", "-q", "-F", img)
		tool(t, "tune2fs", append(tc.tune, img)...)
		dev := loopDevice(t, img)
		target := filepath.Join(t.TempDir(), "data")
		if _, err := MountFS(dev, target, "ext4"); err != nil {
			t.Fatal(err)
		}
		super := superOptions(t, target)
		unix.Unmount(target, unix.MNT_DETACH)
		if got := strings.Contains(","+super+",", ",errors=remount-ro,"); got != tc.override {
			t.Errorf("tune2fs %v: superblock options %q, errors=remount-ro given: %v, want %v", tc.tune, super, got, tc.override)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "x"), []byte("x"), 0o644); err != nil {
		t.Errorf("not writable: %v", err)
	}

	_, err = MountFS(dev, filepath.Join(t.TempDir(), "nofs"), "nosuchfs")
	if err == nil || !strings.Contains(err.Error(), "filesystem type nosuchfs") {
		t.Errorf("unknown type: %v", err)
	}
}

// TestWaitDeviceGPTMismatch: a GPT entry is no match when the kernel's
// partition of its number covers other blocks, and the error says why.
// The disks: a plain MBR written over a GPT's protective one (the kernel
// reads the MBR, whose partition 2 lies elsewhere), and a GPT whose
// partition 2 the kernel was told to shrink (resizepart).
func TestWaitDeviceGPTMismatch(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(t *testing.T, img string) // the image, before it is attached
		attach func(t *testing.T, dev string) // the loop device, partitions scanned
		want   string
	}{
		{"plain MBR over the GPT", writePlainMBR, addMBRPartitions, "no protective MBR"},
		{"partition resized", nil, func(t *testing.T, dev string) { tool(t, "resizepart", dev, "2", "8192") },
			"the kernel's partition is 8192 sectors from sector 18432"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := randomName(t, "rev-")
			img := sparseFile(t, 64<<20)
			tool(t, "sgdisk", "-n", "1:2048:18431", "-c", "1:other", "-n", "2:18432:51199", "-c", "2:"+name, img)
			if tc.edit != nil {
				tc.edit(t, img)
			}
			dev := loopDevice(t, img)
			tool(t, "partx", "-u", dev)
			tc.attach(t, dev)
			waitNode(t, dev+"p2")
			got, _, err := WaitDevice("PARTLABEL="+name, 300*time.Millisecond)
			if !errors.Is(err, ErrDeviceMissing) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WaitDevice = %+v, %v; want %v saying %q", got, err, ErrDeviceMissing, tc.want)
			}
		})
	}
}

// addMBRPartitions makes the partitions of the MBR of dev, as a kernel
// with an MBR reader (CONFIG_MSDOS_PARTITION) does when it attaches it:
// partx adds them on a kernel without one.
func addMBRPartitions(t *testing.T, dev string) {
	t.Helper()
	if _, err := os.Stat(dev + "p2"); err != nil {
		tool(t, "partx", "-a", dev)
	}
	if start := readTrim("/sys/class/block/" + filepath.Base(dev) + "p2/start"); start != "100000" {
		t.Fatalf("%sp2 starts at sector %q, not the MBR's 100000", dev, start)
	}
}

// writePlainMBR writes over block 0 of img an MBR without a 0xEE
// partition, its partition 2 at sectors 100000-120479.
func writePlainMBR(t *testing.T, img string) {
	t.Helper()
	mbr := make([]byte, 512)
	rec := mbr[446+16 : 446+32]
	rec[4] = 0x83
	binary.LittleEndian.PutUint32(rec[8:], 100000)
	binary.LittleEndian.PutUint32(rec[12:], 20480)
	mbr[510], mbr[511] = 0x55, 0xAA
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
}

// waitNode waits up to 2 s for the kernel to make the block device node.
func waitNode(t *testing.T, node string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(20 * time.Millisecond) { // a hang guard: udev may be slow on a loaded machine
		if _, err := os.Stat(node); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear", node)
}

// TestSamePartition compares a GPT entry with a fake sysfs directory of
// the kernel's partition: start and size in 512-byte sectors, the
// entry's blocks in the disk's logical blocks.
func TestSamePartition(t *testing.T) {
	p := GPTPartition{Number: 2, Name: "data", First: 18432, Last: 51199}
	tests := []struct {
		name        string
		start, size string // "" leaves the file out
		sector      int64
		want        string // "" for a match
	}{
		{"512-byte blocks", "18432", "32768", 512, ""},
		{"4096-byte blocks", "147456", "262144", 4096, ""},
		{"4096-byte blocks read as sectors", "18432", "32768", 4096, "the kernel's partition is 32768 sectors from sector 18432, the GPT entry's blocks 18432-51199 are 262144 sectors from sector 147456"},
		{"other start", "100000", "32768", 512, "32768 sectors from sector 100000"},
		{"other size", "18432", "20480", 512, "20480 sectors from sector 18432"},
		{"no start", "", "32768", 512, "/start: "},
		{"size not a number", "18432", "big", 512, "/size: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for file, v := range map[string]string{"start": tc.start, "size": tc.size} {
				if v != "" {
					if err := os.WriteFile(filepath.Join(dir, file), []byte(v+"\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			err := samePartition(dir, p, tc.sector)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("samePartition = %v, want %q", err, tc.want)
			}
		})
	}
}
