//! The dashboard's render cost: a whole frame (every pane drawn, ratatui's diff, the backend
//! write) of a call center with 1000 agents, 50 queues and 10k report events, at three
//! terminal sizes; plus the statistics refresh over those events (once a second at most).
//! Goal: a frame within 2 ms. The idle cost (CPU and bytes per minute) is measured on the
//! real binary by benches/idle_dashboard.sh.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use ringside::tui::app::{App, AppConfig, Input};
use ringside::tui::keymap::Keymap;
use ringside::tui::sample::{fill_busy, T0_MS};
use ringside::tui::theme::Theme;
use ringside::tui::view;

fn busy_center() -> App {
    let config = AppConfig {
        account: "101@lab".to_owned(),
        agent: Some("PJSIP/a0001".to_owned()),
        ..AppConfig::default()
    };
    let mut app = App::new(config, Keymap::default());
    app.update(Input::Tick { epoch_ms: T0_MS });
    fill_busy(&mut app, 10_000);
    app
}

fn render(c: &mut Criterion) {
    let mut app = busy_center();
    let Some(theme) = Theme::built_in("default") else {
        return;
    };
    let mut group = c.benchmark_group("dashboard_frame_1000_agents_50_queues_10k_events");
    for (width, height) in [(80u16, 24u16), (160, 48), (240, 70)] {
        app.update(Input::Resize { width, height });
        let Ok(mut terminal) = Terminal::new(TestBackend::new(width, height));
        group.bench_function(format!("{width}x{height}"), |b| {
            b.iter(|| {
                let _ = terminal.draw(|frame| view::draw(frame, black_box(&app), &theme));
            })
        });
    }
    group.finish();
    c.bench_function("statistics_refresh_10k_events", |b| {
        b.iter(|| app.refresh_stats())
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
