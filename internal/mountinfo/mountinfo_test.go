package mountinfo

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const text = `1 1 0:2 / / rw - rootfs rootfs rw,size=1000k
25 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 master:2 - cgroup cgroup rw,memory
31 1 8:1 / /mnt/with\040space rw - ext4 /dev/sda1 rw
32 1 8:1 /data/sub\040dir /srv ro - ext4 /dev/sda1 rw
bad line
`
	ms, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{1, "0:2", "/", "/", "rw", "rootfs", "rootfs", "rw,size=1000k"},
		{25, "0:22", "/", "/proc", "rw,nosuid,nodev,noexec,relatime", "proc", "proc", "rw"},
		{30, "0:26", "/", "/sys/fs/cgroup/memory", "rw,relatime", "cgroup", "cgroup", "rw,memory"},
		{31, "8:1", "/", "/mnt/with space", "rw", "ext4", "/dev/sda1", "rw"},
		{32, "8:1", "/data/sub dir", "/srv", "ro", "ext4", "/dev/sda1", "rw"},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mounts: %+v", len(ms), ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, ms[i], want[i])
		}
	}
}

func TestReadSelf(t *testing.T) {
	ms, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		if m.Point == "/proc" && m.FSType == "proc" {
			found = true
		}
	}
	if !found {
		t.Errorf("no proc at /proc in %+v", ms)
	}
}
