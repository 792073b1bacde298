// Package image packs a root filesystem into a berth image, unpacks images
// (berth images, ordinary tarballs, OCI image layouts and docker save
// archives) safely into a directory, verifies digests and signatures, and
// keeps a cache of unpacked trees for boot (Cache.Prepare).
//
// # On-disk layout of a berth image
//
// A berth image is a POSIX tar stream of the flattened root filesystem,
// compressed as a run of independent zstd frames, followed by berth's index
// and the seek table of the zstd seekable format, both in skippable frames.
// Every byte is readable by `zstd -d` and `tar --zstd -xf`, which skip the
// skippable frames and give the same tree as berth. All integers are little
// endian.
//
//	offset 0        data frame 0       a complete zstd frame (RFC 8878):
//	                                   magic 28 B5 2F FD, frame header with
//	                                   Frame_Content_Size, blocks, and the
//	                                   4-byte content checksum (low 32 bits of
//	                                   XXH64 of the frame's decompressed bytes)
//	                data frame 1 ... data frame N-1
//	D = Σ csize[i]  index frame        (see below), then, for an image
//	                                   packed from an OCI layout or docker
//	                                   archive, the config frame (see
//	                                   below) — readers accept zero to
//	                                   1024 skippable frames here (magic
//	                                   0x184D2A50..0x184D2A5F, u32 size,
//	                                   payload) and use the one with magic
//	                                   0x184D2A5B
//	T               seek table frame:
//	  T+0           u32 0x184D2A5E     skippable frame magic
//	  T+4           u32 N*12+9         payload size
//	  T+8+12*i      u32 csize[i]       compressed size of data frame i
//	  T+12+12*i     u32 dsize[i]       decompressed size of data frame i
//	  T+16+12*i     u32 xxh[i]         low 32 bits of XXH64 of frame i's
//	                                   decompressed bytes (same as its
//	                                   content checksum)
//	  T+8+12*N      u32 N              Number_Of_Frames
//	  T+12+12*N     u8  0x80           Seek_Table_Descriptor: bit 7 =
//	                                   checksums present, bits 6..2 reserved
//	                                   (zero), bits 1..0 unused
//	  T+13+12*N     u32 0x8F92EAB1     seekable magic; end of file
//
// A reader finds the seek table from the last 9 bytes, takes the data frames
// to be [0, D) and requires whatever lies between D and T to be skippable
// frames. Readers refuse more than 4,194,304 (2^22) frames. Unpacking needs
// only the seek table; the index serves readers of single files (package
// mmapfs: `berth image ls` and `cat`).
//
// # The index frame
//
// The index lists every path of the tree with its metadata and where its
// data starts. With E entries, S bytes of names, and records of R bytes
// (R = 64 in version 2, which berth writes; 52 in version 1, written
// before berth kept nanoseconds and sparse files, still read):
//
//	I+0             u32 0x184D2A5B     skippable frame magic
//	I+4             u32 P              payload size = 24 + R*E + S + 4
//	payload:
//	  +0            4 bytes "BRTI"     index magic
//	  +4            u16 2              version, 1 or 2; readers refuse others
//	  +6            u16 0              flags, none defined (must be zero)
//	  +8            u32 E              number of entries
//	  +12           u32 S              bytes of the string table
//	  +16           u64                length of the decompressed tar stream
//	                                   (must equal Σ dsize[i])
//	  +24+R*k       entry k, R bytes:
//	    +0          u64 size           regular file: bytes of data (a sparse
//	                                   file's holes included); char and
//	                                   block devices: major<<32 | minor;
//	                                   other types: 0
//	    +8          i64 mtime          seconds since the epoch
//	    +16         u32 parent         index of the parent directory entry
//	    +20         u32 name offset    into the string table
//	    +24         u32 link offset    into the string table
//	    +28         u32 mode           permission bits with setuid, setgid
//	                                   and sticky (mode & 07777)
//	    +32         u32 uid
//	    +36         u32 gid
//	    +40         u32 frame          data frame holding the first data byte
//	    +44         u32 offset         offset of that byte in the frame's
//	                                   decompressed bytes (for entries
//	                                   without data: where data would start)
//	    +48         u16 link length    symlink target, or hardlink target path
//	    +50         u8  name length    the last path component (≤ 255)
//	    +51         u8  type | flags   type in the low bits: 1 regular file,
//	                                   2 directory, 3 symlink, 4 hardlink,
//	                                   5 char device, 6 block device, 7 fifo;
//	                                   bit 7: an implicit directory (a parent
//	                                   that no tar entry names, mode 0755);
//	                                   bit 6 (version 2): a sparse file
//	    version 2 only:
//	    +52         u32 mtime nsec     nanoseconds of mtime (< 10^9)
//	    +56         u64 stored         a sparse file: bytes its data takes in
//	                                   the stream, from its map block to its
//	                                   last segment; 0 for other entries
//	  +24+R*E       S bytes            string table: names and link targets
//	  +P-4          u32                CRC-32C (Castagnoli) of payload bytes
//	                                   [0, P-4)
//
// Entries are in tree order: entry 0 is the root directory (parent 0, empty
// name); every other entry's parent is an earlier directory entry; the
// entries of one directory are contiguous, sorted byte-wise by name, and
// directories' runs follow the order of their directories, so a lookup is a
// binary search per path component and a directory listing is one range.
// Parsers check all of this, the checksum, and that every regular file's
// data lies inside the stream, and refuse the index otherwise.
//
// # The config frame
//
// What the image's OCI config says about running it (see Config) is kept
// in a skippable frame of its own; an image packed from a directory or
// an archive has none, and readers take that as a config saying nothing.
// The file's digest covers it, and so does a signature.
//
//	C+0             u32 0x184D2A5C     skippable frame magic
//	C+4             u32 P              payload size (at most 4 MiB)
//	payload:
//	  +0            4 bytes "BRTC"     config magic
//	  +4            u16 1              version; readers refuse others
//	  +6            u16 0              flags, none defined (must be zero)
//	  +8            P-12 bytes         JSON object with the keys
//	                                   Entrypoint, Cmd, Env (arrays of
//	                                   strings), WorkingDir, User and
//	                                   StopSignal (strings), each omitted
//	                                   when empty
//	  +P-4          u32                CRC-32C of payload bytes [0, P-4)
//
// Readers refuse a second config frame and a config past Config's limits.
//
// # The tar stream
//
// Packed from a directory, entries come in the order of a depth-first walk
// that visits each directory's entries in byte-wise order of their names
// (so "a/x" comes before "a.b"); packed from an archive, in its order; packed
// from an OCI layout or docker archive, the merged layers' surviving entries
// in layer order (see merge.go). The first entry of a directory pack is the
// root directory "./"; the rest are named relative to the root without a
// "./" prefix, directories with a trailing "/". Owners are numeric only (no
// user or group names), extended attributes that pass berth's filter (see
// xattr.go) are SCHILY.xattr PAX records, a modification time with
// nanoseconds is a PAX mtime record, and archive/tar picks USTAR, or
// PAX/GNU records where a name or value does not fit. A file with several
// links is stored once, under the first of its names in walk order; its
// other names are hardlink entries. A regular file with holes (found with
// SEEK_DATA and SEEK_HOLE) is stored as GNU tar stores it with
// --format=posix --sparse, in the PAX sparse format 1.0 (sparsepack.go):
// its data is a map block listing its data segments followed by their
// bytes, and unpacking recreates the holes. Sockets are skipped. The
// stream ends with the two zero blocks of a tar.
//
// # Frame cutting
//
// The tar stream is cut into frames of about FrameSize (default 4 MiB)
// decompressed bytes. A frame is closed at the first entry boundary once it
// holds FrameSize bytes or more, or inside a regular file's data as soon as
// it holds FrameSize bytes and more data follows. A tar header (with its PAX
// or long-name blocks) and an entry's end padding are never split, so every
// frame starts with a header or with file data continuing the previous
// frame's entry. A big file spans several frames, and every frame decodes on
// its own, so frames are decoded in parallel.
//
// # Unpacking
//
// A berth image is unpacked by a crew of goroutines, one per CPU (crew.go).
// Its frames are decoded in parallel with DecodeAll straight from the
// mapping into a few recycled buffers, and the mapping's pages are
// released as the decoding goes, so memory does not grow with the image.
// A 32-bit process maps an image larger than 32 MiB in windows instead
// (package mmapfs): each frame is decoded from a window that holds it
// whole, and at most four windows' worth of address space is mapped. One
// goroutine reads the tar headers from the decoded frames and makes
// directories; batches of whole files are written from slices of the
// frames by whichever goroutine is free (see parallel.go for why their
// order does not matter): decoding and writing are tasks in one queue,
// not goroutines handing work to each other. Files spanning more than two
// frames and sparse files are written on the unpacking goroutine, frame
// by frame (sparseunpack.go).
// Other inputs are streamed on one goroutine. Every entry is confined to
// the destination (root.go, extract.go); limits bound entries, bytes,
// header sizes and decoder memory (limits.go). Into a missing or empty
// destination the unpack is all or nothing: staged, synced, then put in
// place (atomic.go, stage.go).
//
// # Compatibility
//
// The data frames and the seek table are unchanged since the first berth
// images; unpacking needs nothing else, and every version of the index
// lies in a skippable frame that zstd and GNU tar skip. A berth that reads
// only index version 1 still unpacks a version 2 image unless it holds
// sparse files (its frame-parallel path does not know their layout and
// fails with an error), and refuses the version 2 index for ls and cat.
package image
