package boot_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"berth/internal/testutil"
	"berth/internal/vm"
)

// TestQEMUAllChecks boots the architectures that TCG runs slowest — arm
// (armhf, Debian 12's armmp-lpae kernel on -M virt -cpu cortex-a15) and
// riscv64 (Debian 13's kernel on -M virt with OpenSBI) — once each, with
// the demo's containers and the isolation test's in one config, and
// checks what TestQEMUDemoAppliance and TestQEMUIsolation check on amd64
// and arm64: limits seen from inside, the OOM kill reported, the probe's
// escapes denied by this architecture's seccomp filter and the rest of the
// isolation, and a clean power-off.
func TestQEMUAllChecks(t *testing.T) {
	demo, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "demo", "berth.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"arm", "riscv64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			out, err := bootAppliance(t, appliance{
				arch: arch, config: string(demo) + isolationConfig,
				programs: map[string]string{"bin/probe": "./container/testdata/probe"},
				vm:       vm.Config{Timeout: 10 * time.Minute},
			})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			demoChecks(t, out)
			isolationChecks(t, out)
			logTimes(t, out)
		})
	}
}

// smallBoardConfig is one container that shows how much room its root
// (an overlay whose upper layer is on the initramfs's tmpfs) has.
const smallBoardConfig = `
[[container]]
name = "small"
image = "/images/demo.tar.zst"
oneshot = true
command = ["/bin/sh", "-c", "df -k / | tail -1; echo small board ran"]

[[container]]
name = "wide"
image = "/images/wide.tar.zst"
oneshot = true
command = ["/bin/true"]
`

// wideWindowImage is a .tar.zst of one small file whose zstd frame asks
// for a 128 MiB window (as ` + "`zstd --long=27`" + ` writes to a pipe): a
// streamed decoder allocates about twice the window in one request.
func wideWindowImage() string {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("f\n"))
	tw.Close()
	b := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528) // zstd frame magic
	b = append(b, 0x00, (27-10)<<3)                        // no content size; window 2^27
	n := plain.Len()
	b = append(b, byte(n<<3|1), byte(n>>5), byte(n>>13)) // the last block, raw
	return string(append(b, plain.Bytes()...))
}

// TestQEMUSmallBoard boots a 64 MB board (arm, as bench/mem's): its image
// is unpacked into the cache on the initramfs's tmpfs and its container
// runs. A second container's image asks for a 128 MiB zstd window: the
// limit there is 8 MiB, so it is refused with its reason and PID 1 lives
// (berth once asked the kernel for 132 MiB at once, was refused, and the
// Go runtime ended PID 1: a kernel panic). The kernel sized that tmpfs before it freed its init memory and
// the compressed initramfs — about 12 MB, nearly all taken by the
// initramfs's files — so berth gives it tmpfs's own default, half the RAM.
func TestQEMUSmallBoard(t *testing.T) {
	out, err := bootAppliance(t, appliance{
		arch: "arm", config: smallBoardConfig,
		initrd: map[string]string{"images/wide.tar.zst": wideWindowImage()},
		vm:     vm.Config{MemoryMB: 64, Timeout: 10 * time.Minute},
	})
	if err != nil {
		t.Errorf("QEMU did not exit cleanly: %v", err)
	}
	wantLines(t, out, "berth: root tmpfs: ", " MiB, half the RAM", "small | small board ran",
		"window over the limit of 8 MiB (1/8 of this machine's", "berth: power off")
	if m := regexp.MustCompile(`.*window over the limit.*`).FindString(out); m != "" {
		t.Logf("refused: %s", m)
	}
	if t.Failed() {
		t.Logf("console:\n%s", out)
	}
}
