// Command berth is the whole userland of an edge appliance: started by the
// kernel as PID 1 it mounts the early filesystems, reads /etc/berth.toml,
// unpacks each container's image and supervises the containers. Run by hand
// it is the CLI for the same pieces (package cli).
//
// Two runtime settings a CLI start pays for and berth does not use are
// off: naming each mapping for /proc/PID/maps, and a goroutine that
// follows the cgroup's CPU limit (README, Decisions, "A CLI berth takes
// a huge page").
//
//go:debug updatemaxprocs=0
//go:debug decoratemappings=0
package main

import (
	_ "berth/internal/hugeheap" // first: see its doc

	"os"
	"path/filepath"
	"runtime"

	"berth/board"
	"berth/boot"
	"berth/cli"
	"berth/container"
)

func init() {
	// The kernel passes init the words of its command line it does not
	// understand: "__container-init" there is not a container's init,
	// and as PID 1 berth boots (main), whatever its arguments.
	if len(os.Args) > 1 && (os.Args[1] == container.InitArg || os.Args[1] == container.TinyInitArg) && boot.IsMachineInit() {
		return
	}
	// The container's init is this binary re-executed inside the new
	// namespaces. It must keep the main goroutine on the thread that will
	// call execve, because capabilities, no_new_privs and seccomp are per
	// thread. It never returns.
	if len(os.Args) > 1 && os.Args[1] == container.InitArg {
		runtime.LockOSThread()
		container.Init()
	}
	// A container's tiny init (init = true): it forwards signals and
	// reaps orphans until its workload ends. It never returns.
	if len(os.Args) > 1 && os.Args[1] == container.TinyInitArg {
		container.TinyInit()
	}
}

func main() {
	// The kernel runs board.ModprobePath, a symlink to berth, to load a
	// module it asks for: berth is the appliance's modprobe.
	if filepath.Base(os.Args[0]) == "modprobe" {
		os.Exit(board.ModprobeMain(os.Args[1:]))
	}
	// The kernel starts the machine's init with no arguments, or with the
	// words of its command line it did not understand itself and those
	// after "--": berth boots whatever they are, since a verb run as the
	// CLI would exit, and PID 1 exiting panics the kernel. berth started
	// as the first process of a container is PID 1 too, but of its own
	// PID namespace: it is a CLI there and must not boot.
	if boot.IsMachineInit() {
		boot.Main(boot.Options{PID1: true}) // never returns
	}
	os.Exit(cli.Main(os.Args))
}
