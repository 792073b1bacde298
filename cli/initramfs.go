package cli

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"berth/appliance"
	"berth/boot"
	"berth/internal/filekind"
)

const initramfsAbout = `Writes the appliance's boot artifact: a zstd-compressed newc cpio holding
berth for ARCH as /init, FILE as /etc/berth.toml, every file the config names
(images, public keys, signatures, seccomp profiles) and the kernel modules
berth will load, from DIR (an extracted /lib/modules/RELEASE) with their
dependencies. A path relative to the config's directory is /etc's on the
appliance; an absolute one must be given by --file PATH=FILE, except one
under [storage]'s mount (/data by default): that is on the data partition
and left out. The same
inputs give the same bytes (mtimes 0, or $SOURCE_DATE_EPOCH).
berth for ARCH is --berth, else this binary when it is for ARCH, else
berth-linux-ARCH beside it (as make writes out/berth-linux-ARCH).`

// applianceFlags are the flags berth initramfs and berth vm share.
type applianceFlags struct {
	arch, modules, berth *string
	files                listFlag
}

func (cmd *command) applianceFlags() *applianceFlags {
	f := &applianceFlags{
		arch:    cmd.fs.String("arch", runtime.GOARCH, "the appliance's `ARCH`: amd64, arm64, arm or riscv64"),
		modules: cmd.fs.String("modules", "", "the appliance kernel's modules `DIR` (an extracted /lib/modules/RELEASE)"),
		berth:   cmd.fs.String("berth", "", "berth built for ARCH, as `PATH` (default: see above)"),
	}
	cmd.fs.Var(&f.files, "file", "`PATH=FILE`: put this machine's FILE at PATH on the appliance (repeatable)")
	return f
}

// spec checks the flags and makes the build's spec, or reports a usage
// error (status ≥ 0).
func (f *applianceFlags) spec(cmd *command, config string) (appliance.Spec, int) {
	spec := appliance.Spec{Config: config, Arch: *f.arch, ModulesDir: *f.modules, Berth: *f.berth, Files: map[string]string{}}
	if _, ok := appliance.LookupArch(spec.Arch); !ok {
		return spec, cmd.fail("--arch %q: want one of %s", spec.Arch, strings.Join(appliance.ArchNames, ", "))
	}
	for _, v := range f.files.vals {
		at, host, ok := strings.Cut(v, "=")
		if !ok || !strings.HasPrefix(at, "/") || host == "" {
			return spec, cmd.fail("--file %q: want PATH=FILE, PATH absolute", v)
		}
		spec.Files[at] = host
	}
	return spec, -1
}

// build builds the initramfs of spec with berth for its architecture,
// printing what it holds on stdout and the notes on stderr.
func (c *ctx) build(name string, spec appliance.Spec) (*appliance.Built, error) {
	if spec.Berth == "" {
		var err error
		if spec.Berth, err = appliance.BerthFor(spec.Arch); err != nil {
			return nil, err
		}
	}
	b, err := appliance.Build(spec)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.stdout, "/init <- %s\n%s <- %s\n", spec.Berth, boot.DefaultConfig, spec.Config)
	for _, p := range b.Placed {
		fmt.Fprintf(c.stdout, "%s <- %s", p.Path, p.Host)
		if p.Key != "" {
			fmt.Fprintf(c.stdout, " (%s)", p.Key)
		}
		fmt.Fprintln(c.stdout)
	}
	if b.Modules != nil {
		fmt.Fprintf(c.stdout, "modules of %s: %s\n", b.Modules.Release(), orNone(strings.Join(b.Modules.Modules(), " ")))
	}
	for _, n := range b.Notes {
		fmt.Fprintf(c.stderr, "berth %s: note: %s\n", name, n)
	}
	return b, nil
}

// initramfsMain is `berth initramfs --config FILE [--arch A] [--modules
// DIR] -o OUT`.
func initramfsMain(c *ctx, args []string) int {
	cmd := c.command("initramfs", "--config FILE [--arch ARCH] [--modules DIR] [--berth PATH] [--file PATH=FILE]... -o OUT", initramfsAbout)
	config := cmd.fs.String("config", "", "the appliance's config `FILE`")
	out := cmd.fs.String("o", "", "write the initramfs to `OUT`")
	flags := cmd.applianceFlags()
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	if *config == "" || *out == "" {
		return cmd.fail("--config and -o are required")
	}
	spec, status := flags.spec(cmd, *config)
	if status >= 0 {
		return status
	}
	// OUT is checked before the build as well as by Write: -o /dev/null
	// fails at once, and is not replaced.
	err := filekind.CheckReplace(*out)
	var b *appliance.Built
	if err == nil {
		b, err = c.build("initramfs", spec)
	}
	if err == nil {
		err = b.Write(*out)
	}
	if err != nil {
		c.errorf("initramfs: %v", err)
		return exitFailure
	}
	st, err := os.Stat(*out)
	if err != nil {
		c.errorf("initramfs: %v", err)
		return exitFailure
	}
	fmt.Fprintf(c.stdout, "wrote %s: %d bytes, a zstd-compressed newc cpio for %s\n", *out, st.Size(), spec.Arch)
	return exitOK
}
