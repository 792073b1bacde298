package vm

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ModuleSet is a set of kernel modules taken from a Debian kernel package
// for an initramfs: the .ko files of the modules asked for, of their
// dependencies and of their soft dependencies, with the modules.dep,
// modules.alias, modules.softdep and modules.builtin files depmod would
// write. Debian's package ships none but modules.builtin (depmod runs at
// install), so they are built here from each module's .modinfo section.
type ModuleSet struct {
	Release string            // e.g. 6.1.0-56-amd64
	Files   map[string]string // initramfs path -> host path
	Dep     string            // modules.dep content
	Alias   string            // modules.alias content: "alias PATTERN NAME"
	Softdep string            // modules.softdep content: "softdep NAME pre: A post: B"
	Builtin string            // modules.builtin content
}

// Modules resolves names (module names, '-' or '_') in the kernel package
// unpacked for arch under repo's .cache: its lib/modules, or usr/lib/modules
// in Debian 13's merged-/usr packages.
func Modules(repo, arch string, names []string) (*ModuleSet, error) {
	pkg := filepath.Join(CacheDir(repo), "deb", arch, "linux-image")
	base := filepath.Join(pkg, "lib", "modules")
	if _, err := os.Stat(base); err != nil {
		base = filepath.Join(pkg, "usr", "lib", "modules")
	}
	rels, _ := os.ReadDir(base)
	if len(rels) != 1 {
		return nil, fmt.Errorf("want one kernel release under %s, found %d: run 'make fetch ARCH=%s'", base, len(rels), arch)
	}
	set := &ModuleSet{Release: rels[0].Name(), Files: map[string]string{}}
	root := filepath.Join(base, set.Release)
	byName := map[string]string{} // module name -> path relative to root
	err := filepath.WalkDir(filepath.Join(root, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if name, ok := moduleFileName(d.Name()); ok {
				rel, _ := filepath.Rel(root, p)
				byName[modName(name)] = rel
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(root, "modules.builtin"))
	set.Builtin = string(builtin)
	deps := map[string][]string{} // rel -> dependency rels
	var aliases, softdeps []string
	var add func(name string) error
	add = func(name string) error {
		rel, ok := byName[modName(name)]
		if !ok {
			if strings.Contains(set.Builtin, "/"+strings.ReplaceAll(name, "_", "-")+".ko") ||
				strings.Contains(set.Builtin, "/"+name+".ko") {
				return nil // built into the kernel
			}
			return fmt.Errorf("module %s is not in kernel %s", name, set.Release)
		}
		if _, done := deps[rel]; done {
			return nil
		}
		deps[rel] = nil
		info, err := readModinfo(filepath.Join(root, rel))
		if err != nil {
			return err
		}
		for _, d := range info.depends {
			if err := add(d); err != nil {
				return err
			}
			deps[rel] = append(deps[rel], byName[modName(d)])
		}
		for _, a := range info.aliases {
			aliases = append(aliases, "alias "+a+" "+modName(info.name(rel)))
		}
		if len(info.softdeps) > 0 {
			softdeps = append(softdeps, "softdep "+modName(info.name(rel))+" "+strings.Join(info.softdeps, " "))
			for _, d := range softdepModules(info.softdeps) {
				// A soft dependency may name an alias ("crc32c" is
				// crc32c_generic and crc32c_intel); one that nothing
				// provides is skipped, as modprobe does.
				for _, m := range providers(root, byName, d) {
					if err := add(m); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	var lines []string
	for rel, ds := range deps {
		set.Files[filepath.Join("lib/modules", set.Release, rel)] = filepath.Join(root, rel)
		line := rel + ":" // no trailing space: kmodule reads "" as a dependency
		if len(ds) > 0 {
			line += " " + strings.Join(ds, " ")
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	sort.Strings(aliases)
	sort.Strings(softdeps)
	set.Dep = strings.Join(lines, "\n") + "\n"
	set.Alias = strings.Join(aliases, "\n") + "\n"
	set.Softdep = strings.Join(softdeps, "\n") + "\n"
	return set, nil
}

// providers returns the modules that are, or have the alias, name: the
// module of that name, else those whose file name contains it and whose
// .modinfo lists it as an alias.
func providers(root string, byName map[string]string, name string) []string {
	if _, ok := byName[modName(name)]; ok {
		return []string{name}
	}
	var out []string
	for m, rel := range byName {
		if !strings.Contains(m, modName(name)) {
			continue
		}
		info, err := readModinfo(filepath.Join(root, rel))
		if err == nil && slices.Contains(info.aliases, name) {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// softdepModules lists the modules of a softdep value ("pre: a b post: c").
func softdepModules(fields []string) []string {
	var out []string
	for _, f := range fields {
		if f != "pre:" && f != "post:" {
			out = append(out, f)
		}
	}
	return out
}

func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleFileName returns the module name of a module file: NAME.ko, or
// NAME.ko.xz and NAME.ko.zst as Debian's newer kernels ship them.
func moduleFileName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst"} {
		if name, ok := strings.CutSuffix(file, ext); ok {
			return name, true
		}
	}
	return "", false
}

// moduleELF reads a module file, decompressing .xz and .zst.
func moduleELF(path string) (*elf.File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".xz"):
		if r, err = xz.NewReader(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	case strings.HasSuffix(path, ".zst"):
		d, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	}
	if r != nil {
		if data, err = io.ReadAll(io.LimitReader(r, 256<<20)); err != nil {
			return nil, err
		}
	}
	return elf.NewFile(bytes.NewReader(data))
}

// modinfo is what berth reads of a module's .modinfo section.
type modinfo struct {
	modname  string   // name=, when the module states it
	depends  []string // depends=
	aliases  []string // alias=
	softdeps []string // softdep=, split: "pre:", "a", "post:", "b"
}

// name is the module's name: its name= or its file name.
func (m modinfo) name(rel string) string {
	if m.modname != "" {
		return m.modname
	}
	n, _ := moduleFileName(filepath.Base(rel))
	return n
}

// readModinfo reads a module's .modinfo ELF section.
func readModinfo(path string) (modinfo, error) {
	var m modinfo
	f, err := moduleELF(path)
	if err != nil {
		return m, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return m, nil
	}
	data, err := sec.Data()
	if err != nil {
		return m, fmt.Errorf("module %s: %w", path, err)
	}
	for _, kv := range strings.Split(string(data), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case v == "":
		case k == "name":
			m.modname = v
		case k == "depends":
			m.depends = strings.Split(v, ",")
		case k == "alias":
			m.aliases = append(m.aliases, v)
		case k == "softdep":
			m.softdeps = append(m.softdeps, strings.Fields(v)...)
		}
	}
	return m, nil
}

// moduleDepends reads "depends=" from a module's .modinfo ELF section.
func moduleDepends(path string) ([]string, error) {
	m, err := readModinfo(path)
	return m.depends, err
}

// add puts the set into an initramfs.
func (m *ModuleSet) add(i *Initramfs) error {
	for dst, src := range m.Files {
		if err := i.AddHostFile(dst, src, 0o644); err != nil {
			return err
		}
	}
	dir := filepath.Join("lib/modules", m.Release)
	i.AddFile(filepath.Join(dir, "modules.dep"), []byte(m.Dep), 0o644)
	i.AddFile(filepath.Join(dir, "modules.alias"), []byte(m.Alias), 0o644)
	i.AddFile(filepath.Join(dir, "modules.softdep"), []byte(m.Softdep), 0o644)
	i.AddFile(filepath.Join(dir, "modules.builtin"), []byte(m.Builtin), 0o644)
	return nil
}
