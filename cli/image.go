package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"berth/image"

	"golang.org/x/sys/unix"
)

const imageUsage = `usage: berth image pack SRC -o OUT.tar.zst [--platform P] [--frame-size BYTES] [--progress]
       berth image unpack IMAGE DIR [--digest sha256:…] [--pub KEY.pub [--sig FILE]] [--platform P] [--progress]
       berth image ls IMAGE [PATH] [--json]
       berth image cat IMAGE PATH
       berth image digest IMAGE [--platform P]
       berth image keygen -o NAME
       berth image sign --key NAME.key IMAGE [--sig FILE] [--platform P]
       berth image verify --pub NAME.pub IMAGE [--sig FILE] [--platform P]
       berth image gc [--cache DIR] [--state DIR] [--keep sha256:…]... [--config FILE]
       berth image push IMAGE docker://HOST[:PORT]/REPO[:TAG] [--platform P] [--sig FILE] [--config FILE] [--insecure] [--progress]

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
        /var/lib/berth/images, and must be one
push    publishes a berth image to an OCI registry as a one-layer image
        (the file itself, tar+zstd) with its signature; prints the manifest
        digest (berth pull fetches it back)`

// imageVerbs are the subcommands of berth image: data, not a map an init
// function builds in every berth process.
var imageVerbs = [...]struct {
	name string
	run  func(*ctx, []string) int
}{
	{"pack", imagePack}, {"unpack", imageUnpack}, {"ls", imageLs}, {"cat", imageCat},
	{"digest", imageDigest}, {"keygen", imageKeygen}, {"sign", imageSign}, {"verify", imageVerify}, {"gc", imageGC},
	{"push", imagePush},
}

// imageMain is `berth image VERB ...`.
func imageMain(c *ctx, args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(c.stderr, "berth image: missing subcommand\nrun 'berth image -h' for usage\n")
		return exitUsage
	}
	for _, v := range imageVerbs {
		if v.name == args[0] {
			return v.run(c, args[1:])
		}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(c.stdout, imageUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "berth image: unknown subcommand %q\nrun 'berth image -h' for usage\n", args[0])
	return exitUsage
}

// imageFail reports err and returns the failure status.
func (c *ctx) imageFail(err error) int {
	c.errorf("%v", err)
	return exitFailure
}

// imagePack is `berth image pack SRC -o OUT`.
func imagePack(c *ctx, args []string) int {
	cmd := c.command("image pack", "SRC -o OUT.tar.zst [--platform P] [--frame-size BYTES] [--progress]", "Packs SRC (a directory, a tar, .tar.gz or .tar.zst, an OCI image layout or a\ndocker save archive) into a berth image, written atomically.")
	out := cmd.fs.String("o", "", "output image `FILE` (required)")
	frame := cmd.fs.Int("frame-size", 0, "decompressed `BYTES` per zstd frame, 64 KiB to 512 MiB (default 4 MiB)")
	platform := cmd.fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index (default: this machine's)")
	lines := cmd.fs.Bool("progress", false, "print progress lines even when stderr is not a terminal")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	if *out == "" {
		return cmd.fail("-o OUT is required: the image file to write")
	}
	if image.CheckFrameSize(*frame) != nil {
		return cmd.fail("--frame-size %d: %v", *frame, image.ErrFrameSize)
	}
	progress := c.progress(*lines)
	start := time.Now()
	if err := image.Pack(pos[0], *out, image.PackOptions{FrameSize: *frame, Log: c.stderr, Platform: *platform, Progress: progress}); err != nil {
		return c.imageFail(err)
	}
	size := int64(0)
	if st, err := os.Stat(*out); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(c.stderr, "packed %s into %s, %s in %.2fs\n", pos[0], *out, mib(size), time.Since(start).Seconds())
	return exitOK
}

// imageUnpack is `berth image unpack IMAGE DIR`.
func imageUnpack(c *ctx, args []string) int {
	cmd := c.command("image unpack", "IMAGE DIR [--digest sha256:…] [--pub KEY.pub [--sig FILE]] [--platform P] [--progress]",
		"Unpacks IMAGE into DIR: all or nothing when DIR is missing or empty (a mount\npoint too), in place when DIR holds files. Entries that would land outside\nDIR are refused, naming the entry and its offset.")
	fs := cmd.fs
	lines := fs.Bool("progress", false, "print progress lines even when stderr is not a terminal")
	digest := fs.String("digest", "", "refuse the image unless its digest is `sha256:HEX`")
	pub := fs.String("pub", "", "refuse the image unless signed by this public `KEY`")
	sig := fs.String("sig", "", "signature `FILE` (default IMAGE.sig)")
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := cmd.parse(args, 2, 2)
	if status >= 0 {
		return status
	}
	progress := c.progress(*lines)
	opts := image.UnpackOptions{
		Progress: progress, Log: c.stderr, Digest: *digest, PublicKey: *pub, Signature: *sig, Platform: *platform}
	st, err := image.Unpack(pos[0], pos[1], opts)
	if err != nil {
		return c.imageFail(err)
	}
	fmt.Fprintf(c.stderr, "unpacked %d entries, %s in %.2fs (%s)\n", st.Entries, mib(st.Bytes), st.Elapsed.Seconds(), st.Format)
	return exitOK
}

// progress is where long work draws its progress: stderr when it is a
// terminal (redrawn in place) or when always (--progress), else nowhere.
func (c *ctx) progress(always bool) io.Writer {
	if always || isTerminal(c.stderr) {
		return c.stderr
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// imageStatus maps an error to an exit status, reporting it.
func (c *ctx) imageStatus(err error) int {
	if err != nil {
		return c.imageFail(err)
	}
	return exitOK
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
