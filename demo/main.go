// Command demo boots the demo appliance in QEMU: it builds a busybox image
// with `berth image pack`, writes an initramfs holding berth as /init,
// demo/berth.toml and the image, boots a Debian kernel on it and streams
// the console. make demo runs it; the guest powers itself off at the end.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/hugelgupf/vmtest/qemu"

	"berth/internal/vm"
)

func main() {
	arch := flag.String("arch", "amd64", "guest architecture: amd64, arm64, arm or riscv64")
	repo := flag.String("repo", ".", "berth checkout (holds out/ and .cache/)")
	flag.Parse()
	if err := run(*repo, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(repo, arch string) error {
	if _, ok := vm.Arches[arch]; !ok {
		return fmt.Errorf("unknown arch %q: want amd64, arm64, arm or riscv64", arch)
	}
	work := filepath.Join(vm.CacheDir(repo), "demo", arch)
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	hostBerth := filepath.Join(repo, "out", "berth-linux-"+runtime.GOARCH)
	guestBerth := filepath.Join(repo, "out", "berth-linux-"+arch)

	// 1. The demo userland: busybox for the guest, plus the script each
	// container runs.
	show, err := os.ReadFile(filepath.Join(repo, "demo", "show.sh"))
	if err != nil {
		return err
	}
	rootfs := filepath.Join(work, "rootfs")
	if err := vm.BusyboxRootfs(repo, arch, rootfs, map[string]string{"demo/show.sh": string(show)}); err != nil {
		return err
	}

	// 2. Packed with berth image pack.
	img := filepath.Join(work, "demo.tar.zst")
	pack := exec.Command(hostBerth, "image", "pack", rootfs, "-o", img)
	pack.Stdout, pack.Stderr = os.Stdout, os.Stderr
	if err := pack.Run(); err != nil {
		return fmt.Errorf("%s: %w", pack, err)
	}

	// 3. The initramfs: /init, /etc/berth.toml, /images/demo.tar.zst and
	// the overlay module.
	initrd := filepath.Join(work, "initramfs.cpio")
	app := vm.Appliance{
		Berth:  guestBerth,
		Config: filepath.Join(repo, "demo", "berth.toml"),
		Images: map[string]string{"demo.tar.zst": img},
	}
	// overlay gives each container a writable layer over the shared,
	// once-unpacked image.
	if app.Modules, err = vm.Modules(repo, arch, []string{"overlay"}); err != nil {
		return err
	}
	if err := app.Write(initrd); err != nil {
		return err
	}
	kernel, err := vm.Kernel(repo, arch)
	if err != nil {
		return err
	}

	// 4. Boot and stream the console until the guest powers off.
	cfg := vm.Config{Arch: arch, Kernel: kernel, Initramfs: initrd}
	fmt.Printf("demo: booting %s in QEMU (TCG): kernel %s\n", arch, filepath.Base(kernel))
	opts := append(cfg.Options(), qemu.WithSerialOutput(nopCloser{os.Stdout}))
	v, err := qemu.Start(vm.QEMUArch(arch), opts...)
	if err != nil {
		return err
	}
	if err := v.Wait(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	fmt.Println("demo: the appliance powered off; QEMU exited")
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
