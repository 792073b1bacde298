package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth/boot"
	"berth/image"
	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

const imageUsage = `usage: berth image pack SRC -o OUT.tar.zst [--platform P]
       berth image unpack IMAGE DIR [--digest sha256:…] [--pub KEY.pub [--sig FILE]] [--platform P]
       berth image ls IMAGE [PATH] [--json]
       berth image cat IMAGE PATH
       berth image digest IMAGE [--platform P]
       berth image keygen -o NAME
       berth image sign --key NAME.key IMAGE [--sig FILE]
       berth image verify --pub NAME.pub IMAGE [--sig FILE]
       berth image gc [--cache DIR] [--keep sha256:…]... [--config FILE]

pack    writes a berth image (seekable zstd tar with an index) of SRC — a
        directory, a tar, .tar.gz or .tar.zst, an OCI image layout (directory
        or tar) or a docker save archive — to OUT atomically
unpack  extracts IMAGE (any of those, recognised by content) into DIR,
        creating DIR if missing; entries that would land outside DIR are
        refused. An OCI layout holding several images takes PATH:REF
ls      lists a directory (default the root) of a berth image, or one entry
cat     writes a file of a berth image to stdout, decoding only its frames
digest  prints the image's digest: sha256 of a file, or an OCI image's
        manifest digest
keygen  writes an ed25519 key pair NAME.key and NAME.pub (PEM)
sign    writes IMAGE.sig (or --sig FILE) signing IMAGE's digest
verify  checks the signature; exit status 1 when it does not hold
gc      removes cached rootfs trees whose digest is neither kept nor
        referenced by the config (default /etc/berth.toml unless --keep is
        given); the cache is the config's [images] cache, else
        /var/lib/berth/images`

// imageMain is `berth image VERB ...`.
func imageMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, imageUsage)
		return exitUsage
	}
	verbs := map[string]func([]string) int{
		"pack": imagePack, "unpack": imageUnpack, "ls": imageLs, "cat": imageCat,
		"digest": imageDigest, "keygen": imageKeygen, "sign": imageSign, "verify": imageVerify, "gc": imageGC,
	}
	if verb, ok := verbs[args[0]]; ok {
		return verb(args[1:])
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(os.Stderr, imageUsage)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "berth image: unknown subcommand %q\n%s\n", args[0], imageUsage)
	return exitUsage
}

// imageFlags parses a verb's flags; it returns the positionals, or an exit
// status ≥ 0 when the verb should stop (usage shown).
func imageFlags(fs *flag.FlagSet, args []string, usage string, npos ...int) ([]string, int) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berth image "+usage)
		fs.PrintDefaults()
	}
	pos, status := parseInterspersed(fs, args)
	if status >= 0 {
		return nil, status
	}
	for _, n := range npos {
		if len(pos) == n {
			return pos, -1
		}
	}
	fs.Usage()
	return nil, exitUsage
}

// imageFail reports err and returns the failure status.
func imageFail(err error) int {
	errorf("%v", err)
	return exitFailure
}

// imagePack is `berth image pack SRC -o OUT`.
func imagePack(args []string) int {
	fs := flag.NewFlagSet("image pack", flag.ContinueOnError)
	out := fs.String("o", "", "output image `FILE` (required)")
	frame := fs.Int("frame-size", 0, "decompressed `BYTES` per zstd frame (default 4 MiB)")
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index (default: this machine's)")
	pos, status := imageFlags(fs, args, "pack SRC -o OUT.tar.zst", 1)
	if status >= 0 {
		return status
	}
	if *out == "" {
		fs.Usage()
		return exitUsage
	}
	start := time.Now()
	if err := image.Pack(pos[0], *out, image.PackOptions{FrameSize: *frame, Log: os.Stderr, Platform: *platform}); err != nil {
		return imageFail(err)
	}
	size := int64(0)
	if st, err := os.Stat(*out); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(os.Stderr, "packed %s into %s, %s in %.2fs\n", pos[0], *out, mib(size), time.Since(start).Seconds())
	return exitOK
}

// imageUnpack is `berth image unpack IMAGE DIR`.
func imageUnpack(args []string) int {
	fs := flag.NewFlagSet("image unpack", flag.ContinueOnError)
	lines := fs.Bool("progress", false, "print progress lines even when stderr is not a terminal")
	digest := fs.String("digest", "", "refuse the image unless its digest is `sha256:HEX`")
	pub := fs.String("pub", "", "refuse the image unless signed by this public `KEY`")
	sig := fs.String("sig", "", "signature `FILE` (default IMAGE.sig)")
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := imageFlags(fs, args, "unpack IMAGE DIR", 2)
	if status >= 0 {
		return status
	}
	var progress io.Writer
	if *lines || imageIsTerminal(os.Stderr) {
		progress = os.Stderr // redrawn in place on a terminal
	}
	opts := image.UnpackOptions{
		Progress: progress, Log: os.Stderr, Digest: *digest, PublicKey: *pub, Signature: *sig, Platform: *platform}
	st, err := unpackWhole(pos[0], pos[1], opts)
	if err != nil {
		return imageFail(err)
	}
	fmt.Fprintf(os.Stderr, "unpacked %d entries, %s in %.2fs (%s)\n", st.Entries, mib(st.Bytes), st.Elapsed.Seconds(), st.Format)
	return exitOK
}

// unpackWhole unpacks src into dest all or nothing when dest is missing or
// empty: into a staging directory beside it, renamed onto dest once
// complete and removed on an error. Into a directory that holds files
// already, entries are extracted in place, as tar does, and an error
// leaves what was written so far (the message says so).
func unpackWhole(src, dest string, opts image.UnpackOptions) (image.Stats, error) {
	if ents, err := os.ReadDir(dest); err == nil && len(ents) > 0 {
		st, err := image.Unpack(src, dest, opts)
		if err != nil {
			err = fmt.Errorf("%w (%s keeps the entries written before the error)", err, dest)
		}
		return st, err
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return image.Stats{}, err
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".unpacking-")
	if err != nil {
		return image.Stats{}, err
	}
	if err := os.Chmod(staging, 0o755); err != nil { // as mkdir would; a root entry in the image overrides it
		os.RemoveAll(staging)
		return image.Stats{}, err
	}
	st, err := image.Unpack(src, staging, opts)
	if err == nil {
		// rename(2) replaces an empty directory in one step.
		if err = os.Rename(staging, dest); err != nil {
			err = fmt.Errorf("unpack %s: move %s to %s: %w", src, staging, dest, err)
		}
	}
	if err != nil {
		os.RemoveAll(staging)
	}
	return st, err
}

// imageIsTerminal reports whether f is a terminal.
func imageIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// lsRow is one entry as `ls --json` prints it.
type lsRow struct {
	Path     string `json:"path"`
	Type     string `json:"type"`
	Mode     string `json:"mode"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	Size     int64  `json:"size"`
	MTime    string `json:"mtime"`
	Link     string `json:"link,omitempty"`
	Devmajor uint32 `json:"devmajor,omitempty"`
	Devminor uint32 `json:"devminor,omitempty"`
}

// imageLs is `berth image ls IMAGE [PATH]`.
func imageLs(args []string) int {
	fset := flag.NewFlagSet("image ls", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print a JSON array instead of a table")
	pos, status := imageFlags(fset, args, "ls IMAGE [PATH]", 1, 2)
	if status >= 0 {
		return status
	}
	fsys, err := mmapfs.OpenFS(pos[0], mmapfs.Options{})
	if err != nil {
		return imageFail(err)
	}
	defer fsys.Close()
	name := "."
	if len(pos) == 2 {
		name = strings.Trim(filepath.Clean("/"+pos[1]), "/")
		if name == "" {
			name = "."
		}
	}
	info, err := fsys.Lstat(name)
	if err != nil {
		return imageFail(err)
	}
	var rows []lsRow
	if st, err := fsys.Stat(name); err == nil && st.IsDir() {
		ents, err := fsys.ReadDir(name)
		if err != nil {
			return imageFail(err)
		}
		for _, e := range ents {
			i, _ := e.Info()
			rows = append(rows, lsRowOf(strings.TrimPrefix(name+"/"+e.Name(), "./"), i))
		}
	} else {
		rows = append(rows, lsRowOf(name, info))
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []lsRow{}
		}
		return imageStatus(enc.Encode(rows))
	}
	for _, r := range rows {
		size := fmt.Sprint(r.Size)
		if r.Type == "char" || r.Type == "block" {
			size = fmt.Sprintf("%d, %d", r.Devmajor, r.Devminor)
		}
		line := fmt.Sprintf("%s %5d %5d %10s %s %s", r.Mode, r.UID, r.GID, size, r.MTime[:16], r.Path)
		if r.Link != "" {
			line += " -> " + r.Link
		}
		fmt.Println(line)
	}
	return exitOK
}

// lsRowOf describes one entry.
func lsRowOf(path string, info fs.FileInfo) lsRow {
	e := info.Sys().(*mmapfs.Entry)
	r := lsRow{Path: path, Type: e.Type.String(), Mode: e.ModeString(), UID: e.UID, GID: e.GID,
		Size: e.Size, MTime: time.Unix(e.MTime, 0).UTC().Format(time.RFC3339), Link: e.Link}
	if e.Type == mmapfs.TypeChar || e.Type == mmapfs.TypeBlock {
		r.Devmajor, r.Devminor = e.Devmajor, e.Devminor
	}
	return r
}

// imageCat is `berth image cat IMAGE PATH`.
func imageCat(args []string) int {
	fset := flag.NewFlagSet("image cat", flag.ContinueOnError)
	pos, status := imageFlags(fset, args, "cat IMAGE PATH", 2)
	if status >= 0 {
		return status
	}
	fsys, err := mmapfs.OpenFS(pos[0], mmapfs.Options{})
	if err != nil {
		return imageFail(err)
	}
	defer fsys.Close()
	name := strings.Trim(filepath.Clean("/"+pos[1]), "/")
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("cat %s: %s: no such file in the image", pos[0], pos[1])
		}
		return imageFail(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st != nil && st.IsDir() {
		return imageFail(fmt.Errorf("cat %s: %s: is a directory", pos[0], pos[1]))
	}
	_, err = io.Copy(os.Stdout, f.(io.Reader))
	if err != nil {
		err = fmt.Errorf("cat %s: %s: %w", pos[0], pos[1], err)
	}
	return imageStatus(err)
}

// imageDigest is `berth image digest IMAGE`.
func imageDigest(args []string) int {
	fs := flag.NewFlagSet("image digest", flag.ContinueOnError)
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := imageFlags(fs, args, "digest IMAGE", 1)
	if status >= 0 {
		return status
	}
	d, err := image.Digest(pos[0], *platform)
	if err != nil {
		return imageFail(err)
	}
	fmt.Println(d)
	return exitOK
}

// imageKeygen is `berth image keygen -o NAME`.
func imageKeygen(args []string) int {
	fs := flag.NewFlagSet("image keygen", flag.ContinueOnError)
	out := fs.String("o", "", "write `NAME`.key and NAME.pub (required)")
	if _, status := imageFlags(fs, args, "keygen -o NAME", 0); status >= 0 {
		return status
	}
	if *out == "" {
		fs.Usage()
		return exitUsage
	}
	key, pub, err := image.Keygen(*out)
	if err != nil {
		return imageFail(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (keep it secret) and %s\n", key, pub)
	return exitOK
}

// imageSign is `berth image sign --key K IMAGE`.
func imageSign(args []string) int { return imageSignature(args, "sign", "key", "private") }

// imageVerify is `berth image verify --pub P IMAGE`.
func imageVerify(args []string) int { return imageSignature(args, "verify", "pub", "public") }

// imageSignature signs an image or verifies its signature.
func imageSignature(args []string, verb, keyFlag, kind string) int {
	fs := flag.NewFlagSet("image "+verb, flag.ContinueOnError)
	key := fs.String(keyFlag, "", kind+" `KEY` file (required)")
	sig := fs.String("sig", "", "signature `FILE` (default IMAGE.sig)")
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := imageFlags(fs, args, verb+" --"+keyFlag+" KEY IMAGE", 1)
	if status >= 0 {
		return status
	}
	if *key == "" {
		fs.Usage()
		return exitUsage
	}
	if verb == "sign" {
		d, err := image.Sign(pos[0], *key, *sig, *platform)
		if err != nil {
			return imageFail(err)
		}
		fmt.Fprintf(os.Stderr, "signed %s\n", d)
		return exitOK
	}
	d, err := image.Verify(pos[0], *key, *sig, *platform)
	if err != nil {
		return imageFail(err)
	}
	fmt.Printf("verified %s\n", d)
	return exitOK
}

// imageRepeated is a flag that may be given several times.
type imageRepeated []string

func (r *imageRepeated) String() string     { return strings.Join(*r, ",") }
func (r *imageRepeated) Set(v string) error { *r = append(*r, v); return nil }

// imageGC is `berth image gc`.
func imageGC(args []string) int {
	fs := flag.NewFlagSet("image gc", flag.ContinueOnError)
	root := fs.String("cache", "", "cache `DIR` (default: the config's [images] cache, else "+image.DefaultCacheRoot+")")
	config := fs.String("config", "", "keep the images this config `FILE` references (default "+boot.DefaultConfig+" unless --keep is given)")
	var keep imageRepeated
	fs.Var(&keep, "keep", "keep `sha256:HEX` (repeatable)")
	if _, status := imageFlags(fs, args, "gc [--cache DIR] [--keep sha256:...]... [--config FILE]", 0); status >= 0 {
		return status
	}
	// An empty keep set would empty the cache: without --keep, the
	// appliance's own config says what stays.
	if *config == "" && len(keep) == 0 {
		*config = boot.DefaultConfig
	}
	var cfg *boot.Config
	if *config != "" {
		var err error
		if cfg, err = boot.LoadConfig(*config); err != nil {
			return imageFail(fmt.Errorf("gc: %w (nothing removed)", err))
		}
		if *root == "" {
			*root = cfg.Images.Cache
		}
	}
	if *root == "" {
		*root = image.DefaultCacheRoot
	}
	c, err := image.OpenCache(*root)
	if err != nil {
		return imageFail(err)
	}
	keepSet := make(map[string]bool)
	for _, d := range keep {
		keepSet[d] = true
	}
	if cfg != nil {
		for _, cc := range cfg.Container {
			img := cfg.ImagePath(cc)
			d, err := c.Digest(img, cc.Platform)
			if err != nil {
				return imageFail(fmt.Errorf("gc: %s references %s, whose digest cannot be read (nothing removed): %w", *config, img, err))
			}
			keepSet[d] = true
		}
	}
	removed, err := c.GC(keepSet)
	for _, d := range removed {
		fmt.Println("removed", d)
	}
	return imageStatus(err)
}

// imageStatus maps an error to an exit status, reporting it.
func imageStatus(err error) int {
	if err != nil {
		return imageFail(err)
	}
	return exitOK
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments. It returns the positionals, and an exit status
// (≥ 0) when the command should stop: -h or a bad flag.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, exitOK
			}
			return nil, exitUsage
		}
		if fs.NArg() == 0 {
			return pos, -1
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
