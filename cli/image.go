package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"berth/image"

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
unpack  extracts IMAGE (any of those, recognised by content) into DIR:
        all or nothing when DIR is missing or empty (a mount point too),
        in place when DIR holds files; entries that would land outside DIR
        are refused. An OCI layout holding several images takes PATH:REF
ls      lists a directory (default the root) of a berth image, or one entry
cat     writes a file of a berth image to stdout, decoding only its frames
digest  prints the image's digest: sha256 of a file, or an OCI image's
        manifest digest
keygen  writes an ed25519 key pair NAME.key and NAME.pub (PEM)
sign    writes IMAGE.sig (or --sig FILE) signing IMAGE's digest
verify  checks the signature; exit status 1 when it does not hold
gc      removes cached rootfs trees whose digest is neither kept nor
        referenced by the config (default /etc/berth.toml unless --keep is
        given) nor used by a mounted container root, and says what it did;
        the cache is the config's [images] cache, else
        /var/lib/berth/images, and must be one`

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
	st, err := image.Unpack(pos[0], pos[1], opts)
	if err != nil {
		return imageFail(err)
	}
	fmt.Fprintf(os.Stderr, "unpacked %d entries, %s in %.2fs (%s)\n", st.Entries, mib(st.Bytes), st.Elapsed.Seconds(), st.Format)
	return exitOK
}

// imageIsTerminal reports whether f is a terminal.
func imageIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
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
