//! The web console in a real headless Chromium against a real `remedy
//! serve`: approving in the browser runs exactly the plan shown; a reader
//! has no button and a forged decision changes nothing; text from plugins
//! and alerts is shown, never run; new runs appear without a reload.

mod common;

use common::browser::Browser;
use common::daemon::{
    Daemon, ONCALL, TOKEN, VIEWER, basic_auth, firing, is_finished, reaper_approve_route,
    serve_config, try_request, webhook,
};
use common::ports::free_addr;
use common::{DAY, Tmpfs, aged_file, remedy};
use std::path::{Path, PathBuf};

/// The console's address for `user`, with their basic auth in it.
fn page(daemon: &Daemon, (user, password): (&str, &str), path: &str) -> String {
    format!("http://{user}:{password}@{}{path}", daemon.addr)
}

/// Where the screenshots go: kept after the test, for people to look at.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn post_form(daemon: &Daemon, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    try_request(daemon.addr, "POST", path, &headers, body.as_bytes())
        .unwrap()
        .0
}

#[test]
fn approving_in_the_browser_runs_the_plan_shown_and_a_reader_or_a_forgery_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount("4m");
    for name in ["old-1.log", "old-2.log"] {
        aged_file(&disk.path.join(name), 64 * 1024, 30 * DAY);
    }
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &reaper_approve_route(&disk.path));
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let alert = firing(&[("alertname", "TmpFull")], "2026-11-21T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let waiting = daemon.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(waiting[0]["status"], "awaiting-approval", "{waiting:#?}");
    let id = waiting[0]["id"].as_str().unwrap().to_string();
    let browser = Browser::start(dir.path());

    // A reader sees the plan, and no way to decide on it.
    browser.goto(&page(&daemon, VIEWER, "/ui/approvals"));
    let text = browser.text();
    assert!(
        text.contains("old-1.log") && text.contains("old-2.log"),
        "{text}"
    );
    assert_eq!(browser.count("form.approve"), 0, "{text}");
    assert!(text.contains("Deciding takes the decide role"), "{text}");

    // A forged decision: the reader's credentials, or the on-call user's
    // without their token, or from another site. Nothing changes.
    let viewer = basic_auth(VIEWER);
    let oncall = basic_auth(ONCALL);
    let approve = format!("/ui/runs/{id}/approve");
    assert_eq!(
        post_form(&daemon, &approve, &[("Authorization", &viewer)], "csrf=x"),
        403
    );
    assert_eq!(
        post_form(&daemon, &approve, &[("Authorization", &oncall)], ""),
        403
    );
    assert_eq!(
        post_form(
            &daemon,
            &approve,
            &[("Authorization", &oncall)],
            "csrf=0000"
        ),
        403
    );
    let token = format!("Bearer {TOKEN}");
    assert_eq!(
        post_form(&daemon, &approve, &[("Authorization", &token)], "csrf=x"),
        403
    );

    // The on-call user sees the same plan with its hash, and approves it.
    browser.goto(&page(&daemon, ONCALL, "/ui/approvals"));
    browser.screenshot(&screenshots().join("approvals.png"));
    let text = browser.text();
    assert!(
        text.contains("old-1.log") && text.contains("old-2.log"),
        "{text}"
    );
    let hash = browser.eval("return document.querySelector('.hash').textContent");
    let hash = hash.as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64, "{text}");
    let csrf = browser.eval("return document.querySelector('input[name=csrf]').value");
    let csrf = csrf.as_str().unwrap();
    let cross_site = [
        ("Authorization", oncall.as_str()),
        ("Origin", "http://evil.example"),
    ];
    let with_token = format!("csrf={csrf}");
    assert_eq!(
        post_form(&daemon, &approve, &cross_site, &with_token),
        403,
        "another site, even with the token"
    );
    let runs = daemon.runs("route=reap");
    assert_eq!(
        runs[0]["status"], "awaiting-approval",
        "nothing forged took: {runs:#?}"
    );
    assert!(disk.path.join("old-1.log").exists());

    browser.click("form.approve button");
    let done = daemon.wait_for_runs("route=reap&outcome=succeeded", 1, is_finished);
    assert_eq!(done[0]["id"], id.as_str(), "{done:#?}");
    assert!(!disk.path.join("old-1.log").exists() && !disk.path.join("old-2.log").exists());
    browser.goto(&page(&daemon, ONCALL, &format!("/ui/runs/{id}")));
    browser.wait_for_text("succeeded");
    browser.screenshot(&screenshots().join("run.png"));
    let text = browser.text();
    assert!(text.contains("approved by oncall"), "{text}");
    // The timeline: the round, the wait for a decision, both removals.
    assert!(browser.count("figure.timeline rect.round") >= 1, "{text}");
    assert_eq!(browser.count("figure.timeline rect.waiting"), 1, "{text}");
    assert_eq!(browser.count("figure.timeline rect.mark.done"), 2, "{text}");
    for moment in ["asked for approval of 2 actions", "(remove-path): done"] {
        assert!(text.contains(moment), "{moment}: {text}");
    }
    drop(browser);

    let state = dir.path().join("state");
    let audit = remedy(&state, &config)
        .args(["audit", "show", &id])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains(&hash) && audit.contains("oncall"), "{audit}");
}

#[test]
fn text_from_plugins_and_alerts_is_shown_never_run() {
    let dir = tempfile::tempdir().unwrap();
    // Double quotes only, so each fits in a TOML literal string.
    let script = "<script>window.pwned=\"summary\"</script>";
    let image = "<img src=x onerror=\"window.pwned=2\">";
    let link = "<a href=\"javascript:window.pwned=3\">click</a>";
    let routes = format!(
        r#"
[[route]]
name = "hostile-text"
matchers = ['alertname="Markup"']
plugin = "echo"
params = {{ say = '{script}', escalate = '{link}', log = '{image}' }}
"#
    );
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let alert = firing(
        &[
            ("alertname", "Markup"),
            ("note", image),
            ("bidi", "a\u{202e}b"),
        ],
        "2026-11-21T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let runs = daemon.wait_for_runs("route=hostile-text", 1, is_finished);
    let id = runs[0]["id"].as_str().unwrap();
    let browser = Browser::start(dir.path());
    for path in ["/ui/".to_string(), format!("/ui/runs/{id}")] {
        browser.goto(&page(&daemon, VIEWER, &path));
        assert_eq!(
            browser.eval("return typeof window.pwned"),
            "undefined",
            "{path}"
        );
        assert_eq!(browser.count("main img"), 0, "{path}");
        assert_eq!(browser.count("main script"), 0, "{path}");
        assert_eq!(browser.count("main a[href^=javascript]"), 0, "{path}");
    }
    let text = browser.text();
    for shown in [script, image, link, "a\\u202Eb"] {
        assert!(text.contains(shown), "{shown} not shown as text: {text}");
    }
    browser.goto(&page(&daemon, VIEWER, "/ui/"));
    browser.click("#runs a");
    assert_eq!(browser.eval("return typeof window.pwned"), "undefined");
}

#[test]
fn a_run_started_after_the_page_opened_appears_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let routes =
        "[[route]]\nname = \"echo\"\nmatchers = ['alertname=\"Echo\"']\nplugin = \"echo\"\n";
    let config = serve_config(dir.path(), addr, "", routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let browser = Browser::start(dir.path());
    browser.goto(&page(&daemon, VIEWER, "/ui/"));
    let text = browser.text();
    assert!(text.contains("No runs match"), "{text}");
    assert_eq!(browser.count("#chart rect"), 0, "{text}");
    browser.eval("window.stayed = true; return null");
    let alert = firing(
        &[("alertname", "Echo"), ("seen", "live")],
        "2026-11-21T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let runs = daemon.wait_for_runs("route=echo", 1, is_finished);
    let link = format!(
        "main a[href='/ui/runs/{}']",
        runs[0]["id"].as_str().unwrap()
    );
    browser.wait_for(&link);
    // Echo proposes nothing: its run ends nothing-to-do.
    browser.wait_for("#runs .status.nothing-to-do");
    // The chart follows too: one bar, of that outcome.
    browser.wait_for("#chart rect.nothing-to-do");
    assert_eq!(browser.count("#chart rect"), 1);
    assert_eq!(
        browser.eval("return window.stayed"),
        true,
        "the page was not reloaded"
    );
    browser.screenshot(&screenshots().join("runs.png"));
}

#[test]
fn every_console_answer_is_guarded_and_alertmanagers_token_is_not_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", "");
    let _daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    // The whole answer, headers included.
    let get = |path: &str, auth: &[(&str, &str)]| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let headers: String = auth.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u16>()
            .unwrap();
        (status, answer)
    };
    let viewer = basic_auth(VIEWER);
    let (status, answer) = get("/ui/", &[("Authorization", &viewer)]);
    assert_eq!(status, 200);
    let head = answer.to_ascii_lowercase();
    for header in [
        "content-security-policy: default-src 'none'; script-src 'self'",
        "frame-ancestors 'none'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "referrer-policy: same-origin",
    ] {
        assert!(head.contains(header), "{header} missing:\n{answer}");
    }
    let (status, answer) = get("/ui/", &[]);
    assert_eq!(status, 401);
    assert!(answer.contains("Basic realm=\"remedy\""), "{answer}");
    let token = format!("Bearer {TOKEN}");
    assert_eq!(get("/ui/", &[("Authorization", &token)]).0, 403);
    assert_eq!(get("/ui/approvals", &[("Authorization", &token)]).0, 403);
    let (status, css) = get("/ui/static/remedy.css", &[]);
    assert_eq!(status, 200, "the stylesheet needs no credentials");
    assert!(css.to_ascii_lowercase().contains("content-type: text/css"));
    assert_eq!(get("/ui/static/../token", &[]).0, 404);
}

#[test]
fn routes_and_plugins_are_shown_and_only_a_decider_closes_a_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let routes = r#"
[[route]]
name = "crashy"
matchers = ['alertname="Crashy"']
plugin = "hostile"
params = { attack = "panic" }
breaker_failures = 1
"#;
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let get = |who: (&str, &str), path: &str| {
        let auth = basic_auth(who);
        try_request(addr, "GET", path, &[("Authorization", &auth)], b"").unwrap()
    };
    let alert = firing(&[("alertname", "Crashy")], "2026-11-21T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    daemon.wait_for_runs("route=crashy", 1, is_finished);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !get(VIEWER, "/ui/routes").1.contains("status failed\">open") {
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker never opened"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A reader sees the open breaker, but no way to close it, and cannot forge one.
    let (status, page) = get(VIEWER, "/ui/routes");
    assert_eq!(status, 200);
    assert!(!page.contains("/ui/routes/crashy/reset"), "{page}");
    let viewer = basic_auth(VIEWER);
    let reset = "/ui/routes/crashy/reset";
    assert_eq!(
        post_form(&daemon, reset, &[("Authorization", &viewer)], "csrf=x"),
        403
    );

    // The on-call user closes it with their form's token.
    let (_, page) = get(ONCALL, "/ui/routes");
    let csrf = regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#)
        .unwrap()
        .captures(&page)
        .unwrap_or_else(|| panic!("no reset form: {page}"))[1]
        .to_string();
    let oncall = basic_auth(ONCALL);
    let origin = format!("http://{addr}");
    let headers = [("Authorization", oncall.as_str()), ("Origin", &origin)];
    assert_eq!(
        post_form(
            &daemon,
            "/ui/routes/nothing/reset",
            &headers,
            &format!("csrf={csrf}")
        ),
        404
    );
    assert_eq!(
        post_form(&daemon, reset, &headers, &format!("csrf={csrf}")),
        303
    );
    assert!(get(VIEWER, "/ui/routes").1.contains("status pass\">closed"));
    drop(daemon);
    let audit = remedy(&dir.path().join("state"), &config)
        .args(["audit", "export", "--format", "jsonl"])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("breaker-reset") && l.contains("oncall")),
        "{audit}"
    );
}

#[test]
fn the_route_test_box_and_the_plugins_page_answer_readers() {
    let dir = tempfile::tempdir().unwrap();
    let routes =
        "[[route]]\nname = \"echo\"\nmatchers = ['alertname=\"Echo\"']\nplugin = \"echo\"\n";
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", routes);
    let _daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let get = |path: &str| {
        let auth = basic_auth(VIEWER);
        try_request(addr, "GET", path, &[("Authorization", &auth)], b"").unwrap()
    };
    let (status, page) = get("/ui/routes?labels=alertname%3DEcho%0Ainstance%3Dnode-1");
    assert_eq!(status, 200);
    assert!(page.contains("<td>echo</td><td>MATCH</td>"), "{page}");
    let (_, page) = get("/ui/routes?labels=alertname%3DOther");
    assert!(
        page.contains("<td>no</td>") && page.contains("does not match alertname = &#34;Other&#34;"),
        "{page}"
    );
    let (_, page) = get("/ui/routes?labels=just-a-name");
    assert!(page.contains("line 1: expected name=value"), "{page}");

    let (status, page) = get("/ui/plugins");
    assert_eq!(status, 200);
    for shown in [
        "echo",
        "hostile",
        "remedy:plugin/log",
        "not granted",
        "sha256",
    ] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
}

#[test]
fn the_audit_page_verifies_the_chain_and_says_where_it_was_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let routes =
        "[[route]]\nname = \"echo\"\nmatchers = ['alertname=\"Echo\"']\nplugin = \"echo\"\n";
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", routes);
    let state = dir.path().join("state");
    let daemon = Daemon::start(&state, &config, addr);
    let alert = firing(&[("alertname", "Echo")], "2026-11-21T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let runs = daemon.wait_for_runs("route=echo", 1, is_finished);
    let get = |who: &str, path: &str| {
        try_request(addr, "GET", path, &[("Authorization", who)], b"").unwrap()
    };
    let viewer = basic_auth(VIEWER);
    let (status, page) = get(&viewer, "/ui/audit");
    assert_eq!(status, 200);
    assert!(page.contains("status pass\">intact"), "{page}");
    assert!(page.contains("run-created"), "{page}");
    let (status, export) = get(&viewer, "/ui/audit/export");
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|r| r["kind"] == "finished"), "{export}");
    let (_, run_page) = get(
        &viewer,
        &format!("/ui/runs/{}", runs[0]["id"].as_str().unwrap()),
    );
    assert!(
        run_page.contains("run-started") && run_page.contains("<code>finished</code>"),
        "{run_page}"
    );
    assert_eq!(get(&format!("Bearer {TOKEN}"), "/ui/audit/export").0, 403);

    // Someone who can write the database rewrites a record: the page says so.
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    db.execute(
        "UPDATE audit SET body = replace(body, 'echo', 'ekko') WHERE seq = 2",
        [],
    )
    .unwrap();
    let (_, page) = get(&viewer, "/ui/audit");
    assert!(
        page.contains("status failed\">broken") && page.contains("record 2"),
        "{page}"
    );
}
