//! The crate's error type.

/// Everything that can go wrong in `kd-losses`; each variant names the field at fault and the
/// allowed range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KdLossError {
    /// A parameter is outside its allowed range.
    #[error("invalid {field} = {value}: expected {expected}")]
    InvalidParameter {
        /// The parameter's name.
        field: &'static str,
        /// The rejected value, as text.
        value: String,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// Two tensors that must agree in shape do not.
    #[error("{what}: shapes {left:?} and {right:?} do not match")]
    Shape {
        /// Which tensors.
        what: &'static str,
        /// The first shape.
        left: Vec<usize>,
        /// The second shape.
        right: Vec<usize>,
    },
}

pub(crate) fn check_range(
    field: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), KdLossError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(KdLossError::InvalidParameter {
            field,
            value: value.to_string(),
            expected,
        })
    }
}

pub(crate) fn check_shape(
    what: &'static str,
    left: &[usize],
    right: &[usize],
) -> Result<(), KdLossError> {
    if left == right {
        Ok(())
    } else {
        Err(KdLossError::Shape {
            what,
            left: left.to_vec(),
            right: right.to_vec(),
        })
    }
}
