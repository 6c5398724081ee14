//! The runs page's chart: how many runs were created in each slice of the
//! chosen window, stacked by outcome. Drawn here as SVG, so it needs no
//! script and obeys the console's CSP (classes, no inline style).

use crate::store::{RunCount, RunStatus};
use std::time::{Duration, SystemTime};

/// Bars across the window.
pub const SLICES: u32 = 48;
/// The drawing's size in SVG units.
const WIDTH: u32 = 960;
const HEIGHT: u32 = 100;
/// The window shown when the filter names none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One outcome's part of one slice's bar.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub status: &'static str,
    /// What a pointer resting on it is told.
    pub title: String,
}

pub struct Chart {
    pub bars: Vec<Bar>,
    /// Each outcome seen and its runs, in the order outcomes are listed.
    pub totals: Vec<(&'static str, u64)>,
    /// The most runs in one slice: the top of the scale.
    pub tallest: u64,
    pub from: String,
    pub slice: String,
    /// The drawing's size, [`WIDTH`] by [`HEIGHT`].
    pub size: (u32, u32),
}

/// The slice of a window that [`SLICES`] bars divide evenly, in whole
/// minutes, so the chart's labels stay round.
pub fn slice_of(window: Duration) -> Duration {
    let minutes = window.as_secs().div_ceil(60 * u64::from(SLICES)).max(1);
    Duration::from_secs(minutes * 60)
}

impl Chart {
    /// The chart of `counts`, sliced by `slice` from `from`.
    pub fn of(counts: &[RunCount], from: SystemTime, slice: Duration) -> Chart {
        let mut columns = vec![Vec::new(); SLICES as usize];
        for count in counts.iter().filter(|c| c.slice < SLICES && c.runs > 0) {
            columns[count.slice as usize].push((count.status, count.runs));
        }
        let tallest = columns
            .iter()
            .map(|column| column.iter().map(|(_, runs)| runs).sum::<u64>())
            .max()
            .unwrap_or(0);
        let mut bars = Vec::new();
        for (slice_number, column) in columns.iter_mut().enumerate() {
            column.sort_by_key(|(status, _)| RunStatus::ALL.iter().position(|s| s == status));
            let start = from + slice * slice_number as u32;
            bars.extend(stack(slice_number as u32, column, tallest, start, slice));
        }
        Chart {
            bars,
            totals: totals(counts),
            tallest,
            from: humantime::format_rfc3339_seconds(from).to_string(),
            slice: humantime::format_duration(slice).to_string(),
            size: (WIDTH, HEIGHT),
        }
    }
}

/// One slice's bar, its outcomes stacked bottom up. Heights come from the
/// running sum, so rounding never makes a stack taller than its total.
fn stack(
    slice_number: u32,
    column: &[(RunStatus, u64)],
    tallest: u64,
    start: SystemTime,
    slice: Duration,
) -> Vec<Bar> {
    let step = WIDTH / SLICES;
    let level = |runs: u64| HEIGHT - (runs * u64::from(HEIGHT) / tallest.max(1)) as u32;
    let mut below = 0;
    let mut bars = Vec::new();
    for &(status, runs) in column {
        let (bottom, top) = (level(below), level(below + runs));
        below += runs;
        bars.push(Bar {
            x: slice_number * step + 1,
            y: top,
            width: step - 2,
            height: bottom - top,
            status: status.as_str(),
            title: format!(
                "{runs} {} · {} + {}",
                status.as_str(),
                humantime::format_rfc3339_seconds(start),
                humantime::format_duration(slice)
            ),
        });
    }
    bars
}

fn totals(counts: &[RunCount]) -> Vec<(&'static str, u64)> {
    RunStatus::ALL
        .iter()
        .filter_map(|status| {
            let runs: u64 = counts
                .iter()
                .filter(|c| c.status == *status && c.slice < SLICES)
                .map(|c| c.runs)
                .sum();
            (runs > 0).then_some((status.as_str(), runs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(slice: u32, status: RunStatus, runs: u64) -> RunCount {
        RunCount {
            slice,
            status,
            runs,
        }
    }

    #[test]
    fn a_window_is_cut_into_whole_minutes() {
        assert_eq!(slice_of(DEFAULT_WINDOW), Duration::from_secs(30 * 60));
        assert_eq!(slice_of(Duration::from_secs(60)), Duration::from_secs(60));
        assert_eq!(
            slice_of(Duration::from_secs(7 * 24 * 3600 + 1)),
            Duration::from_secs(211 * 60)
        );
    }

    #[test]
    fn outcomes_stack_to_the_slices_total_scaled_to_the_tallest() {
        let counts = [
            count(3, RunStatus::Failed, 1),
            count(3, RunStatus::Succeeded, 3),
            count(10, RunStatus::Succeeded, 2),
        ];
        let chart = Chart::of(&counts, SystemTime::UNIX_EPOCH, Duration::from_secs(60));
        assert_eq!(chart.tallest, 4);
        let drawn: Vec<(u32, u32, u32, &str)> = chart
            .bars
            .iter()
            .map(|b| (b.x, b.y, b.height, b.status))
            .collect();
        // Succeeded is listed before failed, so it is at the bottom.
        assert_eq!(
            drawn,
            [
                (61, 25, 75, "succeeded"),
                (61, 0, 25, "failed"),
                (201, 50, 50, "succeeded")
            ]
        );
        assert_eq!(chart.totals, [("succeeded", 5), ("failed", 1)]);
        assert_eq!(chart.bars[1].title, "1 failed · 1970-01-01T00:03:00Z + 1m");
    }

    #[test]
    fn rounding_never_overfills_a_stack_and_late_slices_are_left_out() {
        let counts = [
            count(0, RunStatus::Succeeded, 1),
            count(0, RunStatus::Escalated, 1),
            count(0, RunStatus::Failed, 1),
            count(SLICES, RunStatus::Failed, 9),
        ];
        let chart = Chart::of(&counts, SystemTime::UNIX_EPOCH, Duration::from_secs(60));
        let height: u32 = chart.bars.iter().map(|b| b.height).sum();
        assert_eq!(height, HEIGHT);
        assert_eq!(chart.bars.len(), 3);
        assert_eq!(chart.tallest, 3);
    }

    #[test]
    fn no_runs_draw_no_bars() {
        let chart = Chart::of(&[], SystemTime::UNIX_EPOCH, Duration::from_secs(60));
        assert!(chart.bars.is_empty() && chart.totals.is_empty());
    }
}
