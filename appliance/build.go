package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"berth/board"
	"berth/boot"
)

// dataMount is where the appliance mounts its data partition, the
// config's [storage] mount; "" without one. Files the config names under
// it are on the partition, not in the initramfs.
func dataMount(cfg *boot.Config) string {
	if cfg.Storage == nil {
		return ""
	}
	return path.Clean(cfg.Storage.MountPoint())
}

// Spec is what an initramfs is built from.
type Spec struct {
	// Config is the config file; it goes in as /etc/berth.toml, where
	// berth looks for it.
	Config string
	// Arch is the appliance's architecture, a GOARCH.
	Arch string
	// Berth is berth built for Arch: /init.
	Berth string
	// ModulesDir is the appliance kernel's modules, an extracted
	// /lib/modules/RELEASE, or "" for an initramfs without modules.
	ModulesDir string
	// Modules, when not nil, are the modules to put in instead of those
	// the config needs: for tests of module loading itself.
	Modules []string
	// Files puts the build machine's files at paths of the appliance: a
	// file the config names at such a path is taken from there.
	Files map[string]string
}

// Built is an initramfs and what went into it.
type Built struct {
	*Initramfs
	// Placed are the files of the config and of Spec.Files, by path.
	Placed []Placed
	// Modules is the kernel modules it holds, or nil.
	Modules *board.ModuleSet
	// Notes say what was left out, and why.
	Notes []string
}

// Placed is one file of the config in the initramfs.
type Placed struct {
	// Path is where it is on the appliance; Host where it came from.
	Path, Host string
	// Key is the config key that names it ("" for Spec.Files).
	Key string
}

// Build reads and checks the config, then gathers the initramfs: berth,
// the config, every file the config names, the digests of its images
// (boot.BootDigests), and the kernel modules berth will load. A file the config names by a relative path is taken from
// the config's directory, and never from outside it: not through "..",
// not through a symlink (it is /etc's on the appliance, whose config is
// /etc/berth.toml). One named by an absolute path is taken from where
// Spec.Files says; one under the data partition's mount is left out; any other is an
// error — a config does not reach into the build machine's files.
func Build(spec Spec) (*Built, error) {
	cfg, err := boot.LoadConfig(spec.Config)
	if err != nil {
		return nil, err
	}
	b := &Built{Initramfs: NewInitramfs()}
	if err := checkELF(spec.Berth, spec.Arch); err != nil {
		return nil, err
	}
	if err := b.AddFile("init", spec.Berth, 0o755); err != nil {
		return nil, fmt.Errorf("berth for %s: %w", spec.Arch, err)
	}
	if err := b.AddFile(boot.DefaultConfig, spec.Config, 0o644); err != nil {
		return nil, err
	}
	if err := b.placeFiles(spec, cfg); err != nil {
		return nil, err
	}
	if err := b.addDigests(cfg); err != nil {
		return nil, err
	}
	if err := b.addModules(spec, cfg); err != nil {
		return nil, err
	}
	sort.Slice(b.Placed, func(i, j int) bool { return b.Placed[i].Path < b.Placed[j].Path })
	return b, nil
}

// placeFiles adds the files the config names and Spec.Files.
func (b *Built) placeFiles(spec Spec, cfg *boot.Config) error {
	data := dataMount(cfg)
	for at := range spec.Files {
		if !path.IsAbs(at) {
			return fmt.Errorf("file %s: want an absolute path on the appliance", at)
		}
		// As written, it is what the checks below and the config's
		// files are matched against: /etc/../data/x would pass for
		// /etc and land in /data.
		if c := path.Clean(at); c != at {
			return fmt.Errorf("file %s: want a clean path (%s)", at, c)
		}
		if onData(at, data) {
			return fmt.Errorf("file %s: under %s, the data partition, which hides what the initramfs has there", at, data)
		}
	}
	placed := map[string]bool{}
	for _, ref := range cfg.Files() {
		at := appliancePath(ref.Path)
		src, err := source(spec, ref, data)
		switch {
		case errors.Is(err, errOnData):
			b.Notes = append(b.Notes, fmt.Sprintf("%s %s is on the data partition (%s): not in the initramfs", ref.Key, ref.Path, data))
			continue
		case err != nil:
			return fmt.Errorf("%s: %s %s: %w", spec.Config, ref.Key, ref.Path, err)
		}
		if err := b.place(at, src); err != nil {
			return fmt.Errorf("%s: %s %s: %w", spec.Config, ref.Key, ref.Path, err)
		}
		b.Placed = append(b.Placed, Placed{Path: at, Host: src.String(), Key: ref.Key})
		placed[at] = true
	}
	for at, host := range spec.Files {
		if placed[at] {
			continue
		}
		if err := b.place(at, File{Name: host}); err != nil {
			return fmt.Errorf("file %s: %w", at, err)
		}
		b.Placed = append(b.Placed, Placed{Path: at, Host: host})
	}
	return nil
}

// errOnData says a file is on the data partition.
var errOnData = errors.New("on the data partition")

// source says where the build machine has a file the config names.
func source(spec Spec, ref boot.FileRef, data string) (File, error) {
	at := appliancePath(ref.Path)
	if host, ok := spec.Files[at]; ok {
		return File{Name: host}, nil
	}
	if ref.SignatureOf != nil {
		// IMAGE.sig comes from beside the image, wherever that is.
		img, err := source(spec, *ref.SignatureOf, data)
		img.Name = strings.TrimSuffix(img.Name, "/") + ".sig"
		return img, err
	}
	switch {
	case onData(at, data):
		return File{}, errOnData
	case path.IsAbs(ref.Path):
		return File{}, fmt.Errorf("an absolute path: the initramfs takes the config's files from its directory "+
			"(write the path relative to it) or from --file %s=FILE", at)
	}
	rel := path.Clean(filepath.ToSlash(ref.Path))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return File{}, fmt.Errorf("outside the config's directory %s", filepath.Dir(spec.Config))
	}
	return File{Dir: filepath.Dir(spec.Config), Name: rel}, nil
}

// place adds the build machine's file or directory src at the
// appliance's path at.
func (b *Built) place(at string, src File) error {
	st, err := src.stat()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file", src)
	case err != nil:
		return err
	case st.IsDir():
		// A directory the config names is an OCI image layout; any
		// other (image = ".", the config's own directory) would pack
		// files it never named, keys beside it among them.
		if !isLayout(src) {
			return fmt.Errorf("%s: a directory that is no OCI image layout (no oci-layout and index.json files)", src)
		}
		return b.AddTree(at, src)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file or a directory", src)
	}
	return b.add(at, &entry{mode: modeReg | 0o644, src: src, size: st.Size()})
}

// isLayout reports whether the directory src holds an OCI image layout's
// two files.
func isLayout(src File) bool {
	for _, name := range []string{"oci-layout", "index.json"} {
		st, err := File{Dir: src.Dir, Name: path.Join(src.Name, name)}.stat()
		if src.Dir == "" {
			st, err = os.Lstat(filepath.Join(src.Name, name))
		}
		if err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// appliancePath is where a path of the config is on the appliance,
// whose config is /etc/berth.toml.
func appliancePath(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(path.Dir(boot.DefaultConfig), p)
}

// onData reports whether an appliance path is on the data partition
// mounted at data ("" for none).
func onData(p, data string) bool {
	return data != "" && (p == data || strings.HasPrefix(p, data+"/"))
}

// checkELF checks that the file is a program for arch.
func checkELF(file, arch string) error {
	if _, ok := LookupArch(arch); !ok {
		return fmt.Errorf("architecture %q: want one of %s", arch, strings.Join(ArchNames, ", "))
	}
	if err := board.ELFMachine(file, arch); err != nil {
		return fmt.Errorf("berth for %s: %w", arch, err)
	}
	return nil
}
