//! Loss curves of the run's non-private trainings (pre-training on public text, the students
//! on the synthetic corpus) as an SVG picture, from `metrics.jsonl`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{DistilDpError, io};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const MARGIN: f64 = 56.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// The curves, one per stage with `loss` lines (the last value logged for each step wins: a
/// resumed run may log a step twice). An empty picture says so when nothing was logged.
pub fn loss_curves_svg(metrics: &Path) -> Result<String, DistilDpError> {
    let text = match std::fs::read_to_string(metrics) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(metrics)(e)),
    };
    let mut series: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // a line cut by a kill
        };
        if let (Some(stage), Some(step), Some(loss)) =
            (v["stage"].as_str(), v["steps"].as_u64(), v["loss"].as_f64())
            && loss.is_finite()
        {
            series
                .entry(stage.to_string())
                .or_default()
                .insert(step, loss);
        }
    }
    Ok(render(&series))
}

fn render(series: &BTreeMap<String, BTreeMap<u64, f64>>) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Training loss of the non-private trainings (per step)</text>\n",
        WIDTH / 2.0
    );
    let points: Vec<(u64, f64)> = series
        .values()
        .flat_map(|s| s.iter().map(|(&k, &v)| (k, v)))
        .collect();
    if points.is_empty() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no loss logged yet</text>\n</svg>\n",
            WIDTH / 2.0,
            HEIGHT / 2.0
        ));
        return svg;
    }
    let max_step = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let x = |s: f64| MARGIN + s / max_step * (WIDTH - 2.0 * MARGIN);
    let y = |l: f64| HEIGHT - MARGIN - (l - lo) / (hi - lo) * (HEIGHT - 2.0 * MARGIN);
    // axes and ticks
    svg.push_str(&format!(
        "<line x1=\"{m}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n<line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{b}\" stroke=\"black\"/>\n",
        m = MARGIN,
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    ));
    for i in 0..=4 {
        let l = lo + (hi - lo) * i as f64 / 4.0;
        let s = max_step * i as f64 / 4.0;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{l:.2}</text>\n<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{s:.0}</text>\n",
            MARGIN - 6.0,
            y(l) + 4.0,
            x(s),
            HEIGHT - MARGIN + 16.0
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">loss (nats)</text>\n",
        WIDTH / 2.0,
        HEIGHT - 12.0,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    ));
    for (i, (name, s)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .iter()
            .map(|(&k, &v)| format!("{:.1},{:.1}", x(k as f64), y(v)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>\n",
            path.join(" "),
            WIDTH - MARGIN,
            MARGIN + 16.0 * i as f64,
            escape(name)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_polyline_per_stage_and_the_last_value_of_a_repeated_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"stage\":\"student\",\"steps\":1,\"loss\":5.0}\n{\"stage\":\"student\",\"steps\":2,\"loss\":4.0}\n{\"stage\":\"student\",\"steps\":2,\"loss\":3.0}\n{\"stage\":\"teacher\",\"steps\":1,\"epsilon\":0.1}\n{\"stage\":\"hard-labels\",\"steps\":1,\"loss\":6.0}\n{\"cut",
        )
        .unwrap();
        let svg = loss_curves_svg(&path).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(">student<") && svg.contains(">hard-labels<"));
        assert!(!svg.contains(">teacher<"), "DP trainings log no loss");
        // student's step 2 is 3.0 (the minimum): drawn at the bottom of the plot
        assert!(svg.contains(&format!("{:.1}", HEIGHT - MARGIN)), "{svg}");
        let empty = loss_curves_svg(&dir.path().join("none.jsonl")).unwrap();
        assert!(empty.contains("no loss logged yet"));
    }
}
