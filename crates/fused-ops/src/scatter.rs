//! Rows added into a table at given indices, in place: an embedding's gradient (or its
//! per-example gradients stacked) without the copy of the whole table that burn-flex 0.21's
//! `select_assign` makes.

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorPrimitive};

use crate::host::{HostF32, host_indices, update_f32};

/// `table[index[i], :] += values[i, :]` for every `i` (repeated indices accumulate), the
/// result of `table.select_assign(0, index, values, IndexingUpdateOp::Add)`.
///
/// On burn-flex (`f32`) the rows are added into `table`'s own storage when no other tensor
/// shares it (otherwise into a copy, so no other tensor changes); elsewhere it is burn's
/// `select_assign`.
///
/// # Panics
/// If `values` is not `[index.len(), table columns]`, or an index is outside the table.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
///
/// let device = Default::default();
/// let table = Tensor::<Flex, 2>::zeros([3, 2], &device);
/// let index = Tensor::<Flex, 1, Int>::from_ints([2, 0, 2], &device);
/// let values = Tensor::<Flex, 2>::from_floats([[1.0, 1.0], [2.0, 3.0], [0.5, 0.5]], &device);
/// let out = fused_ops::scatter_add_rows(table, index, values);
/// let got = out.into_data().to_vec::<f32>().unwrap();
/// assert_eq!(got, vec![2.0, 3.0, 0.0, 0.0, 1.5, 1.5]);
/// ```
pub fn scatter_add_rows<B: Backend>(
    table: Tensor<B, 2>,
    index: Tensor<B, 1, Int>,
    values: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let [rows, cols] = table.dims();
    let [n] = index.dims();
    assert_eq!(
        values.dims(),
        [n, cols],
        "scatter_add_rows: values must be [index length, table columns]"
    );
    let index_prim = index.into_primitive();
    let values_prim = values.into_primitive().tensor();
    let host = match (host_indices(&index_prim), HostF32::of(&values_prim)) {
        (Some(ids), Some(v)) => Some((ids, v)),
        _ => None,
    };
    let table_prim = table.into_primitive().tensor();
    let table_prim = match host {
        Some((ids, v)) => {
            let add = |out: &mut [f32]| {
                let src = v.values();
                for (i, &id) in ids.iter().enumerate() {
                    let r = usize::try_from(id)
                        .ok()
                        .filter(|&r| r < rows)
                        .unwrap_or_else(|| {
                            panic!("scatter_add_rows: index {id} outside a table of {rows} rows")
                        });
                    let dst = &mut out[r * cols..(r + 1) * cols];
                    for (d, s) in dst.iter_mut().zip(&src[i * cols..(i + 1) * cols]) {
                        *d += s;
                    }
                }
            };
            update_f32(table_prim, add)
        }
        None => Err(table_prim),
    };
    match table_prim {
        Ok(p) => Tensor::from_primitive(TensorPrimitive::Float(p)),
        Err(p) => Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(p)).select_assign(
            0,
            Tensor::from_primitive(index_prim),
            Tensor::from_primitive(TensorPrimitive::Float(values_prim)),
            IndexingUpdateOp::Add,
        ),
    }
}
