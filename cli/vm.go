package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"berth/appliance"
)

const vmAbout = `Builds CONFIG's initramfs, as berth initramfs does, and boots it in QEMU
(TCG) with the console on this terminal (Ctrl-A X quits QEMU) and a virtio
NIC on QEMU's user network (10.0.2.15 by DHCP; the host is 10.0.2.2): -p
forwards TCP from this machine's 127.0.0.1:HOSTPORT to the appliance's
GUESTPORT. --disk FILE is a raw virtio disk (/dev/vda, /dev/vdb... in order).
--kernel defaults to the Debian kernel make fetch unpacked into .cache of the
berth checkout holding the current directory or this berth binary;
--modules to the kernel's own: ROOT/lib/modules/RELEASE (or
ROOT/usr/lib/...) for ROOT/boot/vmlinuz-RELEASE.
Exit status: 0 when the appliance powered itself off (QEMU saw the power-off
and berth logged no FATAL error); 1 when it rebooted, berth failed, the
kernel panicked (panic=-1), its watchdog reset it, --timeout passed, or QEMU
failed or was stopped; 2 usage.`

// vmFlags are berth vm's own flags.
type vmFlags struct {
	kernel, mem          *string
	timeout              *time.Duration
	disks, ports, append listFlag
}

// vmMain is `berth vm [--arch A] [--kernel K] [--modules DIR] [--mem M]
// [--disk FILE]... [-p HOSTPORT:GUESTPORT]... CONFIG`.
func vmMain(c *ctx, args []string) int {
	cmd := c.command("vm", "[--arch ARCH] [--kernel K] [--modules DIR] [--mem M] [--disk FILE]... [-p HOSTPORT:GUESTPORT]... "+
		"[--berth PATH] [--file PATH=FILE]... [--append ARG]... [--timeout D] CONFIG", vmAbout)
	flags := cmd.applianceFlags()
	f := vmFlags{
		kernel:  cmd.fs.String("kernel", "", "the kernel `K` to boot (default: the checkout's fetched Debian kernel)"),
		mem:     cmd.fs.String("mem", "256M", "the appliance's memory `M`: MiB, or with M or G"),
		timeout: cmd.fs.Duration("timeout", 0, "kill QEMU after `D` (e.g. 5m; default: never)"),
	}
	cmd.fs.Var(&f.disks, "disk", "a raw disk image `FILE`, as a virtio disk (repeatable)")
	cmd.fs.Var(&f.ports, "p", "forward `HOSTPORT:GUESTPORT` (TCP, from 127.0.0.1; repeatable)")
	cmd.fs.Var(&f.append, "append", "add `ARG` to the kernel command line (repeatable)")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	spec, status := flags.spec(cmd, pos[0])
	if status >= 0 {
		return status
	}
	q := appliance.QEMU{Arch: spec.Arch, Kernel: *f.kernel, Append: f.append.vals, Disks: f.disks.vals, Net: &appliance.UserNet{}}
	var err error
	if q.MemoryMB, err = parseMiB(*f.mem); err != nil {
		return cmd.fail("--mem %q: %v", *f.mem, err)
	}
	if *f.timeout < 0 {
		return cmd.fail("--timeout %s: want a duration of 0 or more", *f.timeout)
	}
	for _, p := range f.ports.vals {
		fwd, err := appliance.Forward(p)
		if err != nil {
			return cmd.fail("-p %v", err)
		}
		q.Net.HostFwd = append(q.Net.HostFwd, fwd)
	}
	if err := c.prepareVM(&spec, &q); err != nil {
		c.errorf("vm: %v", err)
		return exitFailure
	}
	defer os.RemoveAll(filepath.Dir(q.Initramfs))
	return c.runVM(q, *f.timeout)
}

// prepareVM finds the kernel and its modules, checks the disks, and
// writes the initramfs into a new temporary directory.
func (c *ctx) prepareVM(spec *appliance.Spec, q *appliance.QEMU) error {
	if q.Kernel == "" {
		var err error
		if q.Kernel, err = appliance.DefaultKernel(spec.Arch); err != nil {
			return err
		}
	}
	if _, err := os.Stat(q.Kernel); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if spec.ModulesDir == "" {
		var err error
		if spec.ModulesDir, err = appliance.KernelModules(q.Kernel); err != nil {
			return fmt.Errorf("%w (--modules)", err)
		}
	}
	for _, d := range q.Disks {
		if _, err := os.Stat(d); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}
	b, err := c.build("vm", *spec)
	if err != nil {
		return err
	}
	if b.Modules != nil && isDebianKernel(q.Kernel) && !strings.HasSuffix(q.Kernel, "-"+b.Modules.Release()) {
		return fmt.Errorf("the modules in %s are for kernel %s, not %s", spec.ModulesDir, b.Modules.Release(), q.Kernel)
	}
	dir, err := os.MkdirTemp("", "berth-vm-")
	if err != nil {
		return err
	}
	q.Initramfs = filepath.Join(dir, "initramfs.cpio.zst")
	if err := b.Write(q.Initramfs); err != nil {
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// runVM boots q with the console on c's streams until QEMU exits or
// timeout passes, and returns 0 when the appliance powered itself off.
// SIGINT, SIGTERM and SIGHUP end QEMU.
func (c *ctx) runVM(q appliance.QEMU, timeout time.Duration) int {
	args, err := q.Args()
	if err != nil {
		c.errorf("vm: %v", err)
		return exitFailure
	}
	fmt.Fprintf(c.stderr, "berth vm: booting %s in QEMU (TCG): kernel %s; Ctrl-A X quits\n", q.Arch, q.Kernel)
	var stdin io.Reader
	if c.stdin != nil {
		stdin = c.stdin
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	v, err := appliance.Start(args, stdin, c.stdout, c.stderr)
	if err != nil {
		c.errorf("vm: %v", err)
		return exitFailure
	}
	go func() {
		for range sigs {
			_ = v.Signal(syscall.SIGTERM)
		}
	}()
	exit, err := v.Wait(timeout)
	switch {
	case err != nil:
		c.errorf("vm: QEMU: %v (%s)", err, exit)
	case exit.PoweredOff():
		fmt.Fprintf(c.stderr, "berth vm: %s\n", exit)
		return exitOK
	case exit.TimedOut:
		c.errorf("vm: %s (--timeout %s)", exit, timeout)
	default:
		c.errorf("vm: %s", exit)
	}
	return exitFailure
}

// isDebianKernel reports whether a kernel's file name says its release,
// as Debian's vmlinuz-RELEASE does.
func isDebianKernel(k string) bool {
	name := filepath.Base(k)
	return strings.HasPrefix(name, "vmlinuz-") || strings.HasPrefix(name, "vmlinux-")
}

// parseMiB reads a memory size: MiB, or a number with M or G.
func parseMiB(s string) (int, error) {
	mult, num := 1, s
	switch {
	case strings.HasSuffix(s, "G"):
		mult, num = 1024, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		num = strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > 1<<20/mult {
		return 0, fmt.Errorf("want MiB, or a size with M or G, from 64M to 1024G")
	}
	if n*mult < 64 {
		return 0, fmt.Errorf("at least 64M")
	}
	return n * mult, nil
}
