// Command demo writes the root filesystem of the demo appliance's image:
// Debian's static busybox for the guest's architecture, with a link per
// applet, and the script each demo container runs (demo/show.sh). make
// demo packs it with berth image pack and boots demo/berth.toml with it
// under berth vm.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"berth/appliance"
	"berth/internal/busybox"
)

func main() {
	arch := flag.String("arch", "amd64", "guest architecture: amd64, arm64, arm or riscv64")
	repo := flag.String("repo", ".", "berth checkout (holds demo/ and .cache/)")
	out := flag.String("o", "", "the root filesystem's directory, replaced (required)")
	flag.Parse()
	if err := run(*repo, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(repo, arch, out string) error {
	if _, ok := appliance.LookupArch(arch); !ok {
		return fmt.Errorf("unknown arch %q: want amd64, arm64, arm or riscv64", arch)
	}
	if out == "" {
		return fmt.Errorf("-o DIR is required")
	}
	show, err := os.ReadFile(filepath.Join(repo, "demo", "show.sh"))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return busybox.Rootfs(repo, arch, out, map[string]string{"demo/show.sh": string(show)})
}
