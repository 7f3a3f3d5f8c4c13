//! Samples per control code: exact totals from weights.

use synth_gen::proportional;

#[test]
fn proportional_parts_sum_to_the_total() {
    assert_eq!(proportional(10, &[1.0, 1.0, 2.0]).unwrap(), vec![3, 2, 5]);
    assert_eq!(
        proportional(7, &[0.0, 0.0]).unwrap(),
        vec![4, 3],
        "all zero: uniform"
    );
    assert_eq!(
        proportional(5, &[-3.0, 2.0]).unwrap(),
        vec![0, 5],
        "negative counts as 0"
    );
    for total in [0, 1, 99, 1000] {
        let parts = proportional(total, &[0.3, 7.1, 2.2, 0.0, 1e-9]).unwrap();
        assert_eq!(parts.iter().sum::<usize>(), total);
    }
    assert!(proportional(3, &[]).is_err());
    assert!(proportional(3, &[f64::NAN]).is_err());
}
