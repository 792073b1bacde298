//go:build ignore

// Command gen writes the syscall tables of berth/container/seccomp: one
// package per ABI under internal/sysnum, each listing name → number.
//
// The numbers come from golang.org/x/sys/unix's zsysnum_linux_*.go at the
// version in go.mod, plus the few facts those files lack (ARM's private
// syscalls and the sync_file_range2 alias, the x32 ABI's renumbered calls),
// copied from the kernel's uapi headers and syscall tables cited below.
//
// Run from container/seccomp: go generate (see doc.go).
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// An abi is one syscall table to write.
type abi struct {
	pkg    string // package (and directory) name under internal/sysnum
	goarch string // x/sys file to read: zsysnum_linux_<goarch>.go
	extra  map[string]uint32
}

// armExtra: arch/arm/include/uapi/asm/unistd.h defines sync_file_range2 as
// an alias of arm_sync_file_range and the ARM-private calls at
// __ARM_NR_BASE (0x0f0000) + 1..6; x/sys lists neither.
var armExtra = map[string]uint32{
	"sync_file_range2": 341,
	"breakpoint":       0x0f0001,
	"cacheflush":       0x0f0002,
	"usr26":            0x0f0003,
	"usr32":            0x0f0004,
	"set_tls":          0x0f0005,
	"get_tls":          0x0f0006,
}

var abis = []abi{
	{pkg: "x86_64", goarch: "amd64"},
	{pkg: "i386", goarch: "386"},
	{pkg: "aarch64", goarch: "arm64"},
	{pkg: "arm", goarch: "arm", extra: armExtra},
	{pkg: "riscv64", goarch: "riscv64"},
}

// notSyscalls are constants in x/sys's tables that name no system call.
var notSyscalls = []string{"syscall_mask", "arch_specific_syscall"}

// x32Bit marks an x32 syscall number (__X32_SYSCALL_BIT).
const x32Bit = 0x40000000

// x32Renumbered are the calls arch/x86/entry/syscalls/syscall_64.tbl gives
// x32 numbers 512-547; their x86_64 numbers are "64" (x86_64 only).
var x32Renumbered = map[string]uint32{
	"rt_sigaction": 512, "rt_sigreturn": 513, "ioctl": 514, "readv": 515,
	"writev": 516, "recvfrom": 517, "sendmsg": 518, "recvmsg": 519,
	"execve": 520, "ptrace": 521, "rt_sigpending": 522, "rt_sigtimedwait": 523,
	"rt_sigqueueinfo": 524, "sigaltstack": 525, "timer_create": 526, "mq_notify": 527,
	"kexec_load": 528, "waitid": 529, "set_robust_list": 530, "get_robust_list": 531,
	"vmsplice": 532, "move_pages": 533, "preadv": 534, "pwritev": 535,
	"rt_tgsigqueueinfo": 536, "recvmmsg": 537, "sendmmsg": 538, "process_vm_readv": 539,
	"process_vm_writev": 540, "setsockopt": 541, "getsockopt": 542, "io_setup": 543,
	"io_submit": 544, "execveat": 545, "preadv2": 546, "pwritev2": 547,
}

// x64Only are the other "64" entries of syscall_64.tbl: x32 has no such call.
var x64Only = []string{
	"uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module",
	"nfsservctl", "set_thread_area", "get_thread_area", "epoll_ctl_old",
	"epoll_wait_old", "vserver",
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	dir, version, err := xsysDir()
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range abis {
		src := filepath.Join(dir, "unix", "zsysnum_linux_"+a.goarch+".go")
		table, err := readTable(src)
		if err != nil {
			log.Fatal(err)
		}
		for name, nr := range a.extra {
			table[name] = nr
		}
		from := fmt.Sprintf("golang.org/x/sys@%s unix/zsysnum_linux_%s.go", version, a.goarch)
		if err := write(a.pkg, from, table); err != nil {
			log.Fatal(err)
		}
		if a.pkg == "x86_64" {
			from += " and the x32 rows of syscall_64.tbl"
			if err := write("x32", from, x32Table(table)); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// xsysDir returns the module cache directory and version of golang.org/x/sys.
func xsysDir() (dir, version string, err error) {
	out, err := exec.Command("go", "list", "-m", "-json", "golang.org/x/sys").Output()
	if err != nil {
		return "", "", fmt.Errorf("go list -m golang.org/x/sys: %w", err)
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", "", fmt.Errorf("go list -m golang.org/x/sys: %w", err)
	}
	if m.Dir == "" {
		return "", "", fmt.Errorf("golang.org/x/sys@%s is not in the module cache (go mod download golang.org/x/sys)", m.Version)
	}
	return m.Dir, m.Version, nil
}

// readTable parses the SYS_* constants of an x/sys zsysnum file.
func readTable(path string) (map[string]uint32, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	table := map[string]uint32{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || len(vs.Values) != 1 {
				return nil, fmt.Errorf("%s: unexpected const spec at %v", path, vs.Pos())
			}
			name, ok := strings.CutPrefix(vs.Names[0].Name, "SYS_")
			lit, isLit := vs.Values[0].(*ast.BasicLit)
			if !ok || !isLit || lit.Kind != token.INT {
				return nil, fmt.Errorf("%s: unexpected const %s", path, vs.Names[0].Name)
			}
			name = strings.ToLower(name)
			if slices.Contains(notSyscalls, name) {
				continue
			}
			nr, err := strconv.ParseUint(lit.Value, 0, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, name, err)
			}
			table[name] = uint32(nr)
		}
	}
	if len(table) < 200 {
		return nil, fmt.Errorf("%s: only %d syscalls found", path, len(table))
	}
	return table, nil
}

// x32Table derives the x32 ABI's numbers from x86_64's: every call common
// to both keeps its number with x32Bit set, the renumbered ones get their
// 512-547 numbers, and x86_64-only calls are left out.
func x32Table(x86_64 map[string]uint32) map[string]uint32 {
	t := map[string]uint32{}
	for name, nr := range x86_64 {
		if _, renumbered := x32Renumbered[name]; renumbered || slices.Contains(x64Only, name) {
			continue
		}
		t[name] = x32Bit | nr
	}
	for name, nr := range x32Renumbered {
		t[name] = x32Bit | nr
	}
	return t
}

// writeInts writes a slice literal's elements, 8 to a line.
func writeInts[T uint32 | int](b *bytes.Buffer, values []T) {
	for i, v := range values {
		if i%8 == 0 {
			b.WriteString("\t")
		}
		fmt.Fprintf(b, "%d,", v)
		if i%8 == 7 || i == len(values)-1 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
}

// write writes internal/sysnum/<pkg>/zsysnum.go.
func write(pkg, from string, table map[string]uint32) error {
	names := make([]string, 0, len(table))
	for name := range table {
		names = append(names, name)
	}
	slices.Sort(names)

	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by container/seccomp/internal/gen from %s. DO NOT EDIT.\n\n", from)
	fmt.Fprintf(&b, "// Package %s lists the %s Linux system calls by name.\n", pkg, pkg)
	fmt.Fprintf(&b, "package %s\n\n", pkg)
	fmt.Fprintf(&b, "// Names are the system call names, sorted.\n")
	fmt.Fprintf(&b, "var Names = []string{\n")
	for _, name := range names {
		fmt.Fprintf(&b, "\t%q, // %d\n", name, table[name])
	}
	numbers := make([]uint32, len(names))
	order := make([]int, len(names))
	for i, name := range names {
		numbers[i], order[i] = table[name], i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(numbers[a], numbers[b]) })
	fmt.Fprintf(&b, "}\n\n// Numbers are the numbers of Names, index for index.\nvar Numbers = []uint32{\n")
	writeInts(&b, numbers)
	fmt.Fprintf(&b, "}\n\n// ByNumber lists the indexes of Names in increasing number order.\nvar ByNumber = []uint16{\n")
	writeInts(&b, order)
	b.WriteString("}\n")

	src, err := format.Source(b.Bytes())
	if err != nil {
		return fmt.Errorf("format %s table: %w", pkg, err)
	}
	dir := filepath.Join("internal", "sysnum", pkg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "zsysnum.go")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		return err
	}
	fmt.Printf("gen: %s: %d syscalls\n", path, len(names))
	return nil
}
