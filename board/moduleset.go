package board

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ModuleSet picks kernel modules from a modules directory — an extracted
// /lib/modules/RELEASE, from an installed system or a kernel package —
// for an initramfs: the modules asked for, their dependencies and their
// soft dependencies, the way berth loads them at boot (modprobe.go), and
// the index berth reads there (modules.dep, modules.alias,
// modules.softdep, modules.builtin) written for exactly those modules.
// Dependencies, soft dependencies and aliases come from the directory's
// depmod output (modules.dep, modules.softdep, modules.alias) when it has
// one, as an installed system's does; Debian's kernel packages ship none
// but modules.builtin, so there they come from each module's .modinfo
// section. Every module picked is read either way: it must be an ELF
// file for the set's architecture, and all of them for one kernel.
type ModuleSet struct {
	dir, arch string
	release   string
	// releaseSeen: release is the modules' vermagic, not the name of dir.
	releaseSeen bool
	file        map[string]string // module name -> file, relative to dir
	builtin     map[string]bool
	builtinF    []byte              // modules.builtin as the kernel package has it
	info        map[string]*modinfo // read so far, by module name
	aliases     []modAlias          // depmod's modules.alias, or all modules' once read
	allRead     bool                // aliases holds every module's
	depmod      *modIndex           // the directory's modules.dep and modules.softdep, if any
	picked      map[string]bool
}

// modinfo is what berth reads of a module's .modinfo section.
type modinfo struct {
	depends  []string // depends=
	aliases  []string // alias=
	softdep  []string // softdep=, as written: "pre: a b post: c"
	vermagic string   // the kernel release, first word of vermagic=
}

// OpenModuleSet indexes the module files under dir for a kernel of the
// architecture arch (a GOARCH): an empty set to Add to.
func OpenModuleSet(dir, arch string) (*ModuleSet, error) {
	if r := filepath.Base(dir); !validRelease(r) {
		return nil, fmt.Errorf("modules %s: %q is no kernel release: name the directory of one (lib/modules/RELEASE)", dir, r)
	}
	s := &ModuleSet{
		dir: dir, arch: arch, release: filepath.Base(dir),
		file: map[string]string{}, builtin: map[string]bool{}, info: map[string]*modinfo{}, picked: map[string]bool{},
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && isModuleFile(d.Name()) {
			rel, _ := filepath.Rel(dir, p)
			s.file[moduleName(rel)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules %s: %w", dir, err)
	}
	if s.builtinF, err = readBuiltin(filepath.Join(dir, "modules.builtin")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("modules %s: %w", dir, err)
	}
	for _, l := range strings.Fields(string(s.builtinF)) {
		s.builtin[moduleName(l)] = true
	}
	if len(s.file) == 0 && len(s.builtin) == 0 {
		return nil, fmt.Errorf("modules %s: no kernel modules there (want an extracted /lib/modules/RELEASE)", dir)
	}
	if err := s.readDepmod(); err != nil {
		return nil, fmt.Errorf("modules %s: %w", dir, err)
	}
	return s, nil
}

// readDepmod reads the directory's depmod output, when it has a
// modules.dep: every module it names must be a module file found there.
func (s *ModuleSet) readDepmod() error {
	if _, err := os.Stat(filepath.Join(s.dir, "modules.dep")); errors.Is(err, fs.ErrNotExist) {
		err := readLines(filepath.Join(s.dir, "modules.alias"), func(f []string) {
			if len(f) == 3 && f[0] == "alias" {
				s.aliases = append(s.aliases, modAlias{aliasNormalize(f[1]), modName(f[2])})
			}
		})
		s.allRead = err == nil
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return err
	}
	ix, err := readModIndex(s.dir)
	if err != nil {
		return err
	}
	for m, file := range ix.file {
		if file != filepath.Join(s.dir, s.file[m]) || s.file[m] == "" {
			return fmt.Errorf("modules.dep names %s, which is not a module file under the directory", file)
		}
	}
	s.depmod, s.aliases, s.allRead = ix, ix.aliases, true
	return nil
}

// isModuleFile reports whether a file name is a kernel module's.
func isModuleFile(name string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// Release is the kernel release the modules are for: the one their
// vermagic names, else the directory's name.
func (s *ModuleSet) Release() string { return s.release }

// Add puts what name stands for into the set — a module, or every module
// with a matching alias — with its dependencies and soft dependencies.
// A module built into the kernel needs nothing. An error wrapping
// fs.ErrNotExist says the kernel has no such module, or no module it
// needs. A failed Add leaves the set as it was.
func (s *ModuleSet) Add(name string) error {
	before := maps.Clone(s.picked)
	if err := s.add(name); err != nil {
		s.picked = before
		return err
	}
	return nil
}

func (s *ModuleSet) add(name string) error {
	m := modName(name)
	if s.file[m] != "" || s.builtin[m] {
		return s.pick(m, 0)
	}
	mods, err := s.providers(name)
	if err != nil {
		return err
	}
	if len(mods) == 0 {
		return fmt.Errorf("module %s: %w (not in %s, nor an alias there)", name, fs.ErrNotExist, s.dir)
	}
	for _, p := range mods {
		if err := s.pick(p, 0); err != nil {
			return err
		}
	}
	return nil
}

// pick adds module m, then what it needs.
func (s *ModuleSet) pick(m string, depth int) error {
	if s.picked[m] || s.builtin[m] {
		return nil
	}
	if depth > maxModuleDepth {
		return fmt.Errorf("module %s: dependency loop", m)
	}
	info, err := s.readInfo(m)
	if err != nil {
		return err
	}
	s.picked[m] = true
	for _, d := range info.depends {
		if s.file[modName(d)] == "" && !s.builtin[modName(d)] {
			return fmt.Errorf("module %s needs %s: %w (not in %s)", m, d, fs.ErrNotExist, s.dir)
		}
		if err := s.pick(modName(d), depth+1); err != nil {
			return fmt.Errorf("module %s needs %w", m, err)
		}
	}
	for _, sd := range info.softdep {
		if sd == "pre:" || sd == "post:" {
			continue
		}
		// As with kmod, a soft dependency nothing provides is skipped.
		mods := []string{modName(sd)}
		if s.file[mods[0]] == "" && !s.builtin[mods[0]] {
			if mods, err = s.providers(sd); err != nil {
				return err
			}
		}
		for _, p := range mods {
			if err := s.pick(p, depth+1); err != nil {
				return fmt.Errorf("module %s, soft dependency: %w", m, err)
			}
		}
	}
	return nil
}

// providers returns the modules with an alias that matches name, as
// modprobe matches them (fnmatch, '-' as '_'). Without depmod's
// modules.alias it reads the aliases of the modules whose name contains
// name first ("crc32c" is crc32c_generic's), and of all others only when
// none of those has it: reading every module of a kernel that compresses
// them with xz takes half a minute.
func (s *ModuleSet) providers(name string) ([]string, error) {
	want := aliasNormalize(name)
	if !s.allRead {
		if err := s.readAliases(func(m string) bool { return strings.Contains(m, modName(name)) }); err != nil {
			return nil, err
		}
		if got := matchAliases(s.aliases, want); len(got) > 0 {
			return got, nil
		}
		if err := s.readAliases(func(string) bool { return true }); err != nil {
			return nil, err
		}
		s.allRead = true
	}
	return matchAliases(s.aliases, want), nil
}

// readAliases reads the aliases of the modules that want selects, once
// each.
func (s *ModuleSet) readAliases(want func(module string) bool) error {
	names := make([]string, 0, len(s.file))
	for m := range s.file {
		if _, read := s.info[m]; !read && want(m) {
			names = append(names, m)
		}
	}
	sort.Strings(names)
	for _, m := range names {
		if _, err := s.readInfo(m); err != nil {
			return err
		}
	}
	return nil
}

// matchAliases lists the modules whose alias pattern matches name.
func matchAliases(aliases []modAlias, name string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range aliases {
		if ok, err := path.Match(a.pattern, name); err == nil && ok && !seen[a.module] {
			seen[a.module] = true
			out = append(out, a.module)
		}
	}
	sort.Strings(out)
	return out
}

// readInfo reads module m's .modinfo, once, and checks that the module is
// for this set's architecture and for the kernel release of the others.
func (s *ModuleSet) readInfo(m string) (*modinfo, error) {
	if info, ok := s.info[m]; ok {
		return info, nil
	}
	if s.file[m] == "" {
		// Named by modules.alias, say, with no file of its own.
		return nil, fmt.Errorf("module %s: %w (not in %s)", m, fs.ErrNotExist, s.dir)
	}
	host := filepath.Join(s.dir, s.file[m])
	machine, info, err := readModule(host)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", host, err)
	}
	if want, ok := elfMachine(s.arch); ok && machine != want {
		return nil, fmt.Errorf("module %s is for %s, not %s (%s)", host, machineName(machine), s.arch, machineName(want))
	}
	switch {
	case info.vermagic == "":
	case !validRelease(info.vermagic):
		// It names a directory of the artifact: lib/modules/RELEASE.
		return nil, fmt.Errorf("module %s: vermagic names the kernel release %q, which is no release", host, info.vermagic)
	case !s.releaseSeen:
		s.release, s.releaseSeen = info.vermagic, true
	case info.vermagic != s.release:
		return nil, fmt.Errorf("module %s is for kernel %s, other modules there for %s", host, info.vermagic, s.release)
	}
	if s.depmod != nil {
		s.depmod.override(m, info)
	}
	s.info[m] = info
	if !s.allRead {
		for _, a := range info.aliases {
			s.aliases = append(s.aliases, modAlias{aliasNormalize(a), m})
		}
	}
	return info, nil
}

// override replaces what module m's .modinfo says it needs and provides
// with what depmod wrote for it.
func (ix *modIndex) override(m string, info *modinfo) {
	info.depends, info.softdep, info.aliases = ix.deps[m], nil, nil
	for _, a := range ix.aliases {
		if a.module == m {
			info.aliases = append(info.aliases, a.pattern)
		}
	}
	if pre := ix.pre[m]; len(pre) > 0 {
		info.softdep = append([]string{"pre:"}, pre...)
	}
	if post := ix.post[m]; len(post) > 0 {
		info.softdep = append(append(info.softdep, "post:"), post...)
	}
}

// readModule reads a module file's ELF machine and .modinfo section,
// decompressing .xz, .zst and .gz files.
func readModule(host string) (uint16, *modinfo, error) {
	f, err := os.Open(host)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var r io.ReaderAt = f
	if !strings.HasSuffix(host, ".ko") {
		image, err := decompressModule(f, host)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(image)
	}
	e, err := openELF(r)
	if err != nil {
		return 0, nil, err
	}
	data, err := e.section(".modinfo")
	if err != nil {
		return 0, nil, err
	}
	m := &modinfo{}
	for _, kv := range strings.Split(string(data), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.TrimSpace(v) == "":
		case k == "depends":
			m.depends = strings.Split(v, ",")
		case k == "alias":
			m.aliases = append(m.aliases, v)
		case k == "softdep":
			m.softdep = append(m.softdep, strings.Fields(v)...)
		case k == "vermagic":
			m.vermagic = strings.Fields(v)[0]
		}
	}
	return e.machine, m, nil
}

// Modules lists the modules in the set, sorted.
func (s *ModuleSet) Modules() []string {
	var out []string
	for m := range s.picked {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Files maps the path of each module file in an initramfs
// (lib/modules/RELEASE/...) to the file under the modules directory.
func (s *ModuleSet) Files() map[string]string {
	out := map[string]string{}
	for m := range s.picked {
		out[path.Join("lib/modules", s.release, filepath.ToSlash(s.file[m]))] = filepath.Join(s.dir, s.file[m])
	}
	return out
}

// Index returns the index files for the set, by their path in an
// initramfs: modules.dep (each module with its direct dependencies, as
// paths relative to lib/modules/RELEASE), modules.alias and
// modules.softdep of the modules in the set, and the kernel's
// modules.builtin. Lines are sorted, so the same set gives the same bytes.
func (s *ModuleSet) Index() map[string][]byte {
	var dep, alias, soft []string
	for m := range s.picked {
		info := s.info[m]
		line := filepath.ToSlash(s.file[m]) + ":" // no trailing space: "" is no dependency
		for _, d := range info.depends {
			if f := s.file[modName(d)]; f != "" {
				line += " " + filepath.ToSlash(f)
			}
		}
		dep = append(dep, line)
		for _, a := range info.aliases {
			alias = append(alias, "alias "+a+" "+m)
		}
		if len(info.softdep) > 0 {
			soft = append(soft, "softdep "+m+" "+strings.Join(info.softdep, " "))
		}
	}
	dir := path.Join("lib/modules", s.release)
	out := map[string][]byte{}
	for name, lines := range map[string][]string{"modules.dep": dep, "modules.alias": alias, "modules.softdep": soft} {
		sort.Strings(lines)
		out[path.Join(dir, name)] = []byte(strings.Join(append(lines, ""), "\n"))
	}
	out[path.Join(dir, "modules.builtin")] = s.builtinF
	return out
}

// validRelease reports whether r can be a kernel release, as uname(2)
// gives it and lib/modules/r names it: a single path element, not . or
// .., at most 64 bytes, printable.
func validRelease(r string) bool {
	if r == "" || r == "." || r == ".." || len(r) > 64 {
		return false
	}
	for _, c := range []byte(r) {
		if c <= ' ' || c == '/' || c >= 0x7f {
			return false
		}
	}
	return true
}
