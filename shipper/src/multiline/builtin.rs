//! The rule tables of the built-in detectors.
//!
//! They start from Fluent Bit's built-in multiline parsers (`src/multiline/flb_ml_parser_*.c`),
//! which themselves port GoogleCloudPlatform's fluent-plugin-detect-exceptions
//! (`lib/fluent/plugin/exception_detector.rb`); the additions close gaps seen in real traces
//! and are marked "added" below. Vector and the OpenTelemetry Collector ship no
//! language tables (only user-written start/condition patterns), so there was nothing to
//! take from them.
//!
//! Two rules of thumb keep ordinary logs cheap: a `start_state` rule should only match a
//! line that really begins a trace (every match holds the line until the next one or the
//! flush timeout), and a trace ends as soon as a line matches no rule of its state.

use super::machine::{RuleSpec, rule};

/// Java (and JVM languages, and V8 JavaScript stacks, which share the `at` frame shape).
///
/// From Fluent Bit `flb_ml_parser_java.c` / detect-exceptions `JAVA_RULES`: an exception
/// line (`…Exception:`, `…Error:`, `…Throwable:`), then `at` frames, `Caused by:` /
/// `Suppressed:` sections, `... N more` / `... N common frames omitted`, `nested exception
/// is:` (old Spring). Added: a bare fully qualified exception class with no message
/// (`java.lang.NullPointerException` alone on its line, which the `[:\r\n]` rule misses
/// since lines reach us without their newline), the `  Detail:` / `  Hint:` / `  Where:`
/// lines of PostgreSQL's `PSQLException` message, logback's `Wrapped by:` (root cause first
/// mode), and the dots of `...` are escaped (detect-exceptions matches any three
/// characters).
pub(super) const JAVA: &[RuleSpec] = &[
    rule(
        &["start_state", "java_start_exception"],
        r"(?:Exception|Error|Throwable|V8 errors stack trace)[:\r\n]|^[\t ]*(?:[\w$]+\.)+[\w$]*(?:Exception|Error|Throwable)$",
        "java_after_exception",
    ),
    rule(&["java_after_exception"], r"^[\t ]*nested exception is:[\t ]*$", "java_start_exception"),
    // A blank line inside an exception's message (detect-exceptions keeps it in the trace).
    rule(&["java_after_exception"], r"^$", "java_after_exception"),
    // The indented lines the PostgreSQL driver adds to its exception messages.
    rule(
        &["java_after_exception"],
        r"^[\t ]+(?:Detail|Hint|Where|Position|Internal Query|Routine): ",
        "java_after_exception",
    ),
    rule(&["java_after_exception", "java"], r"^[\t ]+(?:eval )?at ", "java"),
    rule(
        &["java_after_exception", "java"],
        r"^[\t ]*(?:Caused by|Suppressed|Wrapped by):",
        "java_after_exception",
    ),
    rule(&["java_after_exception", "java"], r"^[\t ]*\.\.\. \d+ (?:more|common frames omitted)$", "java"),
];

/// Python tracebacks, including chained exceptions.
///
/// From Fluent Bit `flb_ml_parser_python.c` / detect-exceptions `PYTHON_RULES`:
/// `Traceback (most recent call last):`, `File "…", line N, in f` frames each followed by
/// their source line, and the final `module.ExceptionType: message` line. Added: frames
/// without a source line (`<stdin>`, frozen modules), Python 3.11's `^^^^` position markers,
/// `[Previous line repeated N more times]`, an exception line without a message
/// (`KeyboardInterrupt`), 3.11's exception groups (`+ Exception Group Traceback …` and its
/// `|` / `+-` box), and chaining: after the exception line, a blank line, `During
/// handling of the above exception, another exception occurred:` or `The above exception was
/// the direct cause of the following exception:`, a blank line and the next traceback stay
/// in the same event. That is why the exception line is not terminal: a chain can only be
/// told from the end of a trace by the line after it (so a lone traceback waits for one
/// more line, or the flush timeout; a blank line after it stays in the event, since it may
/// be the start of a chain).
pub(super) const PYTHON: &[RuleSpec] = &[
    rule(&["start_state", "python_chain_traceback"], r"^Traceback \(most recent call last\):$", "python"),
    rule(&["python"], r"^[\t ]+File ", "python"),
    // Source lines (indented deeper than the `File` line) and 3.11's `~~~^^^` markers.
    rule(&["python"], r"^[\t ]{3,}\S", "python"),
    rule(&["python"], r"^[\t ]+\[Previous line repeated \d+ more times?\]$", "python"),
    rule(&["python"], r"^(?:[^\s.():]+\.)*[^\s.():]+(?::|$)", "python_exception"),
    rule(&["python_exception"], r"^$", "python_chain_gap"),
    rule(
        &["python_chain_gap"],
        r"^(?:During handling of the above exception, another exception occurred|The above exception was the direct cause of the following exception):$",
        "python_chain_message",
    ),
    rule(&["python_chain_message"], r"^$", "python_chain_traceback"),
    // 3.11's exception groups: every line of the group's box starts with `|` or `+`.
    rule(
        &["start_state", "python_chain_traceback"],
        r"^[\t ]*\+ Exception Group Traceback \(most recent call last\):$",
        "python_group",
    ),
    rule(&["python_group"], r"^[\t ]*[|+]", "python_group"),
    rule(&["python_group"], r"^$", "python_chain_gap"),
];

/// Go panics and fatal runtime errors with their goroutine dumps.
///
/// From Fluent Bit `flb_ml_parser_go.c` / detect-exceptions `GO_RULES`: `panic: …`
/// (or net/http's `http: panic serving …`), an optional `[signal …` line, then blocks of
/// `goroutine N [state]:` followed by pairs of function / `\tfile.go:N +0x…` lines, with
/// blank lines between goroutines. Added: `fatal error: …` (deadlocks, concurrent map
/// writes), the nested `\tpanic: …` line after `panic: … [recovered]`, `...additional frames elided...`,
/// the `goroutine N gp=… m=… [state]:` header of newer runtimes, and `exit status N`
/// (printed by `go run`), which ends the trace at once: a terminal state.
pub(super) const GO: &[RuleSpec] = &[
    rule(&["start_state"], r"\bpanic: |^fatal error: ", "go_after_panic"),
    rule(&["start_state"], r"http: panic serving", "go_goroutine"),
    rule(&["go_after_panic"], r"^\tpanic: ", "go_after_panic"),
    rule(&["go_after_panic"], r"^\[signal ", "go_after_signal"),
    rule(&["go_after_panic", "go_after_signal", "go_frame_1"], r"^$", "go_goroutine"),
    rule(&["go_goroutine"], r"^goroutine \d+ (?:[^\[]* )?\[[^\]]+\]:$", "go_frame_1"),
    rule(&["go_frame_1"], r"^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by ", "go_frame_2"),
    rule(&["go_frame_1"], r"^\.\.\.additional frames elided\.\.\.$", "go_frame_1"),
    rule(&["go_frame_1"], r"^exit status \d+$", "go_end"),
    rule(&["go_frame_2"], r"^\s", "go_frame_1"),
];

/// Ruby: uncaught exceptions and Rails request errors.
///
/// From Fluent Bit `flb_ml_parser_ruby.c` (`file.rb:N:in 'm': message (Class)` followed by
/// `\tfrom file.rb:N:in 'm'` lines) and detect-exceptions `RUBY_RULES` (Rails'
/// `NoMethodError (message):`, a blank line, then `file.rb:N:in` frames). Added: namespaced
/// classes (`ActiveRecord::RecordNotFound (…):`), Ruby 3.4's `'Class#method'` quoting next
/// to the older backtick, `... N levels...`, and Rails' logger prefix (`F, [time #pid] FATAL
/// -- : [request-id] `) in front of each line of the error, since Rails logs the error one
/// line per call with that prefix.
pub(super) const RUBY: &[RuleSpec] = &[
    rule(&["start_state"], r"^\S.*:\d+:in [`'].*", "ruby_after_exception"),
    rule(&["ruby_after_exception"], r"^\s+from \S+:\d+:in [`']", "ruby_after_exception"),
    rule(&["ruby_after_exception"], r"^\s+\.\.\. \d+ levels\.\.\.$", "ruby_after_exception"),
    rule(&["start_state"], r"(?:Error|Exception|[A-Z]\w*::[A-Z]\w*) \(.*\):$", "ruby_rails_header"),
    // The blank-looking separator lines: only whitespace after the optional logger prefix.
    rule(&["ruby_rails_header"], r"^(?:.* -- : )?(?:\[[^\]]*\] )*\s*$", "ruby_rails_header"),
    rule(&["ruby_rails_header", "ruby_rails_trace"], r"\S+\.rb:\d+:in [`']", "ruby_rails_trace"),
];

/// .NET exceptions (`Exception.ToString()`), alone or in ASP.NET Core console logs.
///
/// From Fluent Bit's C# rules (in `flb_ml_parser_java.c`: `--- End of inner exception stack
/// trace ---`, `--- End of stack trace from previous location where exception was thrown
/// ---`) and the shape `Exception.ToString()` prints: `Namespace.TypeException: message`,
/// ` ---> Inner.Exception: message` for each inner exception, `   at Frame() in file:line N`.
/// Added: `Unhandled exception. ` (the runtime's crash prefix), an error code after the
/// type (`SqlException (0x80131904):`, `SocketException (111):`), the lines some exceptions
/// add to their message (SqlClient's `ClientConnectionId:` / `Error Number:`,
/// `FileNotFoundException`'s `File name:`), .NET 6's shorter `--- End of stack trace from previous
/// location ---`, and the console logger's `fail: Category[EventId]` header with its message
/// and exception indented below it.
pub(super) const DOTNET: &[RuleSpec] = &[
    rule(
        &["start_state"],
        r"^[\t ]*(?:Unhandled [Ee]xception\. )?(?:[\w`]+\.)+[\w`]*Exception(?: \([\w-]+\))?(?::|$)",
        "dotnet_after_exception",
    ),
    rule(&["dotnet_after_exception", "dotnet"], r"^[\t ]*at ", "dotnet"),
    rule(&["dotnet_after_exception", "dotnet"], r"^[\t ]*---> ", "dotnet_after_exception"),
    rule(
        &["dotnet_after_exception", "dotnet"],
        r"^[\t ]*--- End of inner exception stack trace ---$",
        "dotnet",
    ),
    rule(
        &["dotnet_after_exception", "dotnet"],
        r"^[\t ]*--- End of stack trace from previous location(?: where exception was thrown)? ---$",
        "dotnet",
    ),
    rule(
        &["dotnet_after_exception", "dotnet"],
        r"^[\t ]*(?:ClientConnectionId|Error Number|File name):",
        "dotnet_after_exception",
    ),
    rule(&["start_state"], r"^(?:fail|crit): \S+\[\d+\]$", "dotnet_console"),
    // The console logger indents everything of the record below its header.
    rule(&["dotnet_console"], r"^[\t ]+\S", "dotnet_console"),
];

/// The table of a built-in detector by name.
pub(super) fn rules(name: &str) -> Option<&'static [RuleSpec]> {
    Some(match name {
        "java" => JAVA,
        "python" => PYTHON,
        "go" => GO,
        "ruby" => RUBY,
        "dotnet" => DOTNET,
        _ => return None,
    })
}
