package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"berth/image"
)

const imageUsage = `usage: berth image pack SRC -o OUT.tar.zst
       berth image unpack IMAGE DIR

pack    writes a berth image (seekable zstd tar) of SRC, a directory or a
        tar, .tar.gz or .tar.zst, to OUT atomically
unpack  extracts IMAGE (a berth image, .tar.zst, .tar.gz or .tar, recognised
        by content) into DIR, creating DIR if missing; entries that would
        land outside DIR are refused`

// imageMain is `berth image VERB ...`.
func imageMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, imageUsage)
		return exitUsage
	}
	switch args[0] {
	case "pack":
		return imagePack(args[1:])
	case "unpack":
		return imageUnpack(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(os.Stderr, imageUsage)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "berth image: unknown subcommand %q\n%s\n", args[0], imageUsage)
	return exitUsage
}

// imagePack is `berth image pack SRC -o OUT`.
func imagePack(args []string) int {
	fs := flag.NewFlagSet("image pack", flag.ContinueOnError)
	out := fs.String("o", "", "output image `FILE` (required)")
	frame := fs.Int("frame-size", 0, "decompressed `BYTES` per zstd frame (default 4 MiB)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berth image pack SRC -o OUT.tar.zst\n\nPacks SRC (a directory, or a tar, .tar.gz or .tar.zst) into a berth image.")
		fs.PrintDefaults()
	}
	pos, status := parseInterspersed(fs, args)
	if status >= 0 {
		return status
	}
	if len(pos) != 1 || *out == "" {
		fs.Usage()
		return exitUsage
	}
	start := time.Now()
	if err := image.Pack(pos[0], *out, image.PackOptions{FrameSize: *frame, Log: os.Stderr}); err != nil {
		errorf("%v", err)
		return exitFailure
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
	verbose := fs.Bool("progress", false, "print a progress line every second")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berth image unpack IMAGE DIR\n\nExtracts IMAGE into DIR; entries that would land outside DIR are refused.")
		fs.PrintDefaults()
	}
	pos, status := parseInterspersed(fs, args)
	if status >= 0 {
		return status
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitUsage
	}
	var progress io.Writer
	if *verbose {
		progress = os.Stderr
	}
	st, err := image.Unpack(pos[0], pos[1], image.UnpackOptions{Progress: progress, Log: os.Stderr})
	if err != nil {
		errorf("%v", err)
		return exitFailure
	}
	fmt.Fprintf(os.Stderr, "unpacked %d entries, %s in %.2fs (%s)\n", st.Entries, mib(st.Bytes), st.Elapsed.Seconds(), st.Format)
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
