//! Signer bitmaps: bit `i` (bit `i % 8` of byte `i / 8`, least significant bit first) is set when
//! member `i` signed. A bitmap for `n` members has exactly `ceil(n / 8)` bytes and no bit set at
//! or beyond `n`, so each subset has exactly one encoding.

use crate::FinalityError;

/// Encodes sorted or unsorted member indices (all `< members`) as a bitmap.
pub(crate) fn encode(indices: impl IntoIterator<Item = u32>, members: usize) -> Vec<u8> {
    let mut bitmap = vec![0u8; members.div_ceil(8)];
    for i in indices {
        if let Some(byte) = bitmap.get_mut(i as usize / 8) {
            *byte |= 1 << (i % 8);
        }
    }
    bitmap
}

/// Indices of the set bits, ascending, without any well-formedness check (bits beyond
/// `u32::MAX` are ignored).
pub(crate) fn set_bits(bitmap: &[u8]) -> Vec<u32> {
    bitmap
        .iter()
        .enumerate()
        .flat_map(|(byte_index, byte)| {
            (0..8usize)
                .filter(move |bit| byte & (1 << bit) != 0)
                .filter_map(move |bit| u32::try_from(byte_index * 8 + bit).ok())
        })
        .collect()
}

/// Indices of the set bits, ascending, after checking the bitmap is well formed for `members`.
pub(crate) fn decode(bitmap: &[u8], members: usize) -> Result<Vec<u32>, FinalityError> {
    let malformed = FinalityError::MalformedBitmap {
        bytes: bitmap.len(),
        members,
    };
    if bitmap.len() != members.div_ceil(8) || u32::try_from(members).is_err() {
        return Err(malformed);
    }
    let indices = set_bits(bitmap);
    match indices.last() {
        Some(&last) if last as usize >= members => Err(malformed),
        _ => Ok(indices),
    }
}
