package board

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModprobePath is the path berth writes to /proc/sys/kernel/modprobe: a
// symlink to berth's own binary. The kernel runs it as
// `ModprobePath -q -- NAME` whenever it wants a module (request_module),
// and main sees itself called "modprobe" and runs ModprobeMain.
const ModprobePath = "/run/berth/modprobe"

// maxModuleDepth bounds the recursion through dependencies and soft
// dependencies: a cycle in a broken index ends in an error, not a crash.
const maxModuleDepth = 32

// modIndex is what depmod wrote for one kernel — modules.dep,
// modules.alias, modules.softdep, modules.builtin — and which modules are
// loaded. Module names are kept with '_' for '-', as the kernel does.
type modIndex struct {
	dir     string              // /lib/modules/RELEASE
	file    map[string]string   // module name -> absolute path of its file
	deps    map[string][]string // module name -> modules it needs
	aliases []modAlias
	pre     map[string][]string // soft dependencies: loaded before,
	post    map[string][]string // and after, the module
	builtin map[string]bool
	loaded  map[string]bool // in /proc/modules, or loaded through this index
	// insmod loads one module file; loadModuleFile but in tests.
	insmod func(path string) error
}

// modAlias is one line of modules.alias: a pattern (fnmatch(3)) and the
// module it names.
type modAlias struct{ pattern, module string }

// openModIndex reads the index of the running kernel's modules under
// root (/lib/modules/$(uname -r), or /usr/lib/modules/...). modules.dep
// must exist; the other files are optional.
func openModIndex(root string) (*modIndex, error) {
	dir, err := modDir(root)
	if err != nil {
		return nil, err
	}
	return readModIndex(dir)
}

// modDir is the directory of the running kernel's modules under root:
// lib/modules/RELEASE, or usr/lib/modules/RELEASE when that is missing.
func modDir(root string) (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	dir := filepath.Join(root, "lib/modules", rel)
	if _, err := os.Stat(dir); err != nil {
		dir = filepath.Join(root, "usr/lib/modules", rel)
	}
	return dir, nil
}

// readModIndex reads the index depmod wrote in dir.
func readModIndex(dir string) (*modIndex, error) {
	ix := &modIndex{
		dir: dir, file: map[string]string{}, deps: map[string][]string{},
		pre: map[string][]string{}, post: map[string][]string{},
		builtin: map[string]bool{}, loaded: map[string]bool{}, insmod: loadModuleFile,
	}
	if err := ix.readDep(); err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		read func(fields []string)
	}{
		{"modules.alias", ix.addAlias},
		{"modules.softdep", ix.addSoftdep},
		{"modules.builtin", func(f []string) { ix.builtin[moduleName(f[0])] = true }},
	}
	for _, s := range steps {
		if err := readLines(filepath.Join(dir, s.name), s.read); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	_ = readLines("/proc/modules", func(f []string) { ix.loaded[modName(f[0])] = true })
	return ix, nil
}

// readDep reads modules.dep: "kernel/a/b.ko: kernel/c.ko kernel/d.ko".
func (ix *modIndex) readDep() error {
	return readLines(filepath.Join(ix.dir, "modules.dep"), func(f []string) {
		mod := strings.TrimSuffix(f[0], ":")
		name := moduleName(mod)
		ix.file[name] = ix.abs(mod)
		for _, d := range f[1:] {
			ix.deps[name] = append(ix.deps[name], moduleName(d))
		}
	})
}

// addAlias takes "alias PATTERN MODULE".
func (ix *modIndex) addAlias(f []string) {
	if len(f) == 3 && f[0] == "alias" {
		ix.aliases = append(ix.aliases, modAlias{aliasNormalize(f[1]), modName(f[2])})
	}
}

// addSoftdep takes "softdep MODULE pre: A B post: C".
func (ix *modIndex) addSoftdep(f []string) {
	if len(f) < 2 || f[0] != "softdep" {
		return
	}
	name := modName(f[1])
	to := &ix.pre
	for _, w := range f[2:] {
		switch w {
		case "pre:":
			to = &ix.pre
		case "post:":
			to = &ix.post
		default:
			(*to)[name] = append((*to)[name], w)
		}
	}
}

// abs makes a modules.dep path absolute: depmod writes them relative to
// the release's directory (absolute ones are from old depmods).
func (ix *modIndex) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(ix.dir, p)
}

// readLines calls f with the fields of each line that is neither empty
// nor a comment.
func readLines(name string, f func(fields []string)) error {
	file, err := openIndexFile(name)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && !strings.HasPrefix(fields[0], "#") {
			f(fields)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// openIndexFile opens one of a module directory's files (modules.dep,
// .alias, .builtin, .softdep) for reading: a regular file, not followed
// if a symlink, nor waited on if a FIFO — the directory berth initramfs
// is given may be anyone's.
func openIndexFile(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: not a regular file", name)
		}
		return nil, err
	}
	return f, nil
}

// maxBuiltin bounds modules.builtin, a list of names (some 30 KB).
const maxBuiltin = 16 << 20

// readBuiltin reads modules.builtin (see openIndexFile).
func readBuiltin(name string) ([]byte, error) {
	f, err := openIndexFile(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBuiltin+1))
	if err == nil && len(b) > maxBuiltin {
		err = fmt.Errorf("%s: larger than %d bytes", name, maxBuiltin)
	}
	return b, err
}

// moduleName is the module name of a module file's path.
func moduleName(p string) string {
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if n, ok := strings.CutSuffix(base, ext); ok {
			return modName(n)
		}
	}
	return modName(base)
}

// modName writes a module name as the kernel does: '_' for '-'.
func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// aliasNormalize turns '-' into '_' outside bracket expressions, as
// libkmod does to both sides before matching an alias.
func aliasNormalize(s string) string {
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

// resolve returns the modules a name stands for: the module of that name
// (or a built-in one), else every module with a matching alias.
func (ix *modIndex) resolve(name string) []string {
	if m := modName(name); ix.file[m] != "" || ix.builtin[m] {
		return []string{m}
	}
	want := aliasNormalize(name)
	var out []string
	seen := map[string]bool{}
	for _, a := range ix.aliases {
		if ok, err := path.Match(a.pattern, want); err == nil && ok && !seen[a.module] {
			seen[a.module] = true
			out = append(out, a.module)
		}
	}
	return out
}

// probe loads what name stands for, as modprobe does: the module or the
// modules its alias names, each after its dependencies and with its soft
// dependencies. It returns the modules it loaded; it succeeds when at
// least one of an alias's modules is in the kernel afterwards.
func (ix *modIndex) probe(name string) (loaded []string, err error) {
	mods := ix.resolve(name)
	if len(mods) == 0 {
		return nil, fmt.Errorf("module %s: %w (not in %s nor an alias there)", name, fs.ErrNotExist, ix.dir)
	}
	var errs []error
	for _, m := range mods {
		got, err := ix.load(m, 0, map[string]bool{})
		loaded = append(loaded, got...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(mods) {
		return loaded, errors.Join(errs...)
	}
	return loaded, nil
}

// load loads module m after its dependencies, each of which comes with
// its own soft dependencies, then m's "pre:" soft dependencies, m, and
// its "post:" ones — the order of kmod. A soft dependency that cannot be
// loaded does not stop m; should m then fail, the error says so.
func (ix *modIndex) load(m string, depth int, visiting map[string]bool) (loaded []string, err error) {
	if ix.loaded[m] || ix.builtin[m] {
		return nil, nil
	}
	if depth > maxModuleDepth || visiting[m] {
		return nil, fmt.Errorf("module %s: dependency loop", m)
	}
	visiting[m] = true
	defer delete(visiting, m)
	file := ix.file[m]
	if file == "" {
		return nil, fmt.Errorf("module %s: %w (not in %s)", m, fs.ErrNotExist, filepath.Join(ix.dir, "modules.dep"))
	}
	for _, d := range ix.deps[m] {
		got, err := ix.load(d, depth+1, visiting)
		loaded = append(loaded, got...)
		if err != nil {
			return loaded, fmt.Errorf("module %s needs %w", m, err)
		}
	}
	var softErrs []error
	soft := func(names []string) {
		for _, s := range names {
			for _, sm := range ix.resolve(s) {
				got, err := ix.load(sm, depth+1, visiting)
				loaded = append(loaded, got...)
				if err != nil {
					softErrs = append(softErrs, err)
				}
			}
		}
	}
	soft(ix.pre[m])
	if err := ix.insmod(file); err != nil {
		if len(softErrs) > 0 {
			err = fmt.Errorf("%w (after its soft dependencies failed: %w)", err, errors.Join(softErrs...))
		}
		return loaded, fmt.Errorf("load module %s (%s): %w", m, file, err)
	}
	ix.loaded[m] = true
	loaded = append(loaded, m)
	soft(ix.post[m])
	return loaded, nil
}

// InstallModprobe makes berth the kernel's modprobe: ModprobePath, a
// symlink to self (berth's binary), goes into /proc/sys/kernel/modprobe.
// An initramfs has no /sbin/modprobe, so without it every module the
// kernel asks for by itself — crc32c for libcrc32c, the nftables
// expressions, rtnl-link-veth — fails with "no such file or directory".
func InstallModprobe(self string) error {
	if err := os.MkdirAll(filepath.Dir(ModprobePath), 0o700); err != nil {
		return fmt.Errorf("install modprobe: %w", err)
	}
	tmp := ModprobePath + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(self, tmp); err != nil {
		return fmt.Errorf("install modprobe: %w", err)
	}
	if err := os.Rename(tmp, ModprobePath); err != nil {
		return fmt.Errorf("install modprobe: %w", err)
	}
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte(ModprobePath), 0); err != nil {
		return fmt.Errorf("install modprobe: /proc/sys/kernel/modprobe: %w", err)
	}
	return nil
}

// ModprobeMain is berth run as modprobe: by the kernel, as
// `modprobe -q -- NAME`, where NAME is a module or an alias such as
// nft-expr-nat or crypto-crc32c. It reads no config and starts nothing:
// it loads NAME from /lib/modules with its dependencies and soft
// dependencies and says what it did in the kernel log. Other modprobe
// flags are ignored. The status is 0 when every NAME is in the kernel.
func ModprobeMain(args []string) int { return modprobeIn("/", args) }

// openIndex is openModIndex; tests count its calls.
var openIndex = openModIndex

// modprobeIn is ModprobeMain with the modules under root.
func modprobeIn(root string, args []string) int {
	names, quiet := modprobeArgs(args)
	if len(names) == 0 {
		return 1
	}
	if refused, status := refuseEarly(root, names, quiet); refused {
		return status
	}
	ix, err := openIndex(root)
	if err != nil {
		kmsg(3, "berth modprobe %s: %v", strings.Join(names, " "), err)
		return 1
	}
	status := 0
	for _, n := range names {
		loaded, err := ix.probe(n)
		switch {
		case err == nil && len(loaded) > 0:
			kmsg(6, "berth modprobe %s: loaded %s", n, strings.Join(loaded, " "))
		case err != nil && quiet && len(ix.resolve(n)) == 0:
			status = 1 // the kernel asks for many names no module has
		case err != nil:
			kmsg(3, "berth modprobe %s: %v", n, err)
			status = 1
		}
	}
	return status
}

// modprobeArgs returns the module names of a modprobe command line and
// whether -q was given.
func modprobeArgs(args []string) (names []string, quiet bool) {
	for i, a := range args {
		if a == "--" {
			return append(names, args[i+1:]...), quiet
		}
		switch {
		case a == "-q" || a == "--quiet":
			quiet = true
		case !strings.HasPrefix(a, "-"):
			names = append(names, a)
		}
	}
	return names, quiet
}

// kmsg writes one line to the kernel log at level (syslog(2) levels).
func kmsg(level int, format string, args ...any) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "<%d>"+format+"\n", append([]any{level}, args...)...)
}
