//! The small video the upload checks send ([`sample_mp4`]), built here byte by byte.
//!
//! Nothing is downloaded and nothing large is kept: an MP4 is a sequence of boxes (a 32-bit
//! big-endian size, a four-letter type, the payload), and `ftyp` (the brand), `moov` (the
//! movie header `mvhd`) and `mdat` (the media data) are all a type sniffer or a container
//! parser asks for. The `mdat` payload pads the file to the size a check needs, so a file just
//! over a target's limit is the same valid-looking video, only longer.

/// The smallest file [`sample_mp4`] makes: `ftyp` (28 bytes), `moov` with `mvhd` (116) and
/// an empty `mdat` (8).
pub const MIN_SAMPLE_BYTES: usize = 28 + 116 + 8;

/// An MP4 of exactly `size` bytes (at least [`MIN_SAMPLE_BYTES`]).
pub fn sample_mp4(size: usize) -> Vec<u8> {
    let size = size.max(MIN_SAMPLE_BYTES);
    let mut out = Vec::with_capacity(size);
    // ftyp: major brand isom, minor version 0x200, compatible brands.
    boxed(&mut out, b"ftyp", |b| {
        b.extend_from_slice(b"isom");
        b.extend_from_slice(&0x200u32.to_be_bytes());
        b.extend_from_slice(b"isomiso2mp41");
    });
    boxed(&mut out, b"moov", |moov| boxed(moov, b"mvhd", movie_header));
    let payload = size - out.len() - 8;
    boxed(&mut out, b"mdat", |b| b.resize(b.len() + payload, 0));
    out
}

/// The `mvhd` payload (version 0): one second at a timescale of 1000, normal rate and
/// volume, the identity matrix, next track 1.
fn movie_header(b: &mut Vec<u8>) {
    b.extend_from_slice(&[0; 4]); // version and flags
    b.extend_from_slice(&[0; 8]); // creation and modification time
    b.extend_from_slice(&1000u32.to_be_bytes()); // timescale
    b.extend_from_slice(&1000u32.to_be_bytes()); // duration
    b.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    b.extend_from_slice(&[0; 10]); // reserved
    for value in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        b.extend_from_slice(&value.to_be_bytes()); // matrix
    }
    b.extend_from_slice(&[0; 24]); // pre-defined
    b.extend_from_slice(&1u32.to_be_bytes()); // next track id
}

/// Append a box of `kind` whose payload `fill` writes, with its size in front.
fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    fill(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top-level boxes: type and size, checking that they tile the file exactly.
    fn boxes(file: &[u8]) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        let mut at = 0;
        while at < file.len() {
            let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && at + size <= file.len(),
                "box at {at} of size {size}"
            );
            found.push((String::from_utf8_lossy(&file[at + 4..at + 8]).into(), size));
            at += size;
        }
        found
    }

    #[test]
    fn the_sample_is_a_well_formed_mp4_of_the_size_asked() {
        let small = sample_mp4(0);
        assert_eq!(small.len(), MIN_SAMPLE_BYTES);
        assert_eq!(&small[4..12], b"ftypisom");
        assert_eq!(
            boxes(&small),
            [
                ("ftyp".into(), 28),
                ("moov".into(), 116),
                ("mdat".into(), 8)
            ]
        );
        assert_eq!(&small[36..44], b"\0\0\0\x6cmvhd");
        let padded = sample_mp4(65_537);
        assert_eq!(padded.len(), 65_537);
        assert_eq!(boxes(&padded)[2], ("mdat".into(), 65_537 - 144));
    }
}
