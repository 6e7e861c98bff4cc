package Test::AMonitor;

# Test harness of ngx_http_amonitor_module: runs a real nginx (the system
# binary or $TEST_NGINX_BINARY) with the module loaded in a temporary
# prefix, and drives it with Mojolicious WebSocket peers.  This module is
# a facade: it loads the parts, split by role as test-nginx splits
# Util.pm and Socket.pm, and exports their functions together with
# Test::More's.  The parts:
#
#   Test::AMonitor::Nginx    process control: one nginx instance, its
#                            prefix, ports, nginx.conf, start/reload/stop,
#                            nginx -t (system helpers in ::Process)
#   Test::AMonitor::Log      error log checks and the final check
#   Test::AMonitor::Panel    panel WebSocket client (Mojolicious)
#   Test::AMonitor::FakeSDK  fake monitored program (Mojolicious server)
#   Test::AMonitor::Raw      raw sockets, frames and HTTP
#   Test::AMonitor::Blocks   the __DATA__ block runner (run_tests)
#   Test::AMonitor::Util     event loop waits, ports, JSON, UUIDs
#
# The documentation is the POD at the end and docs/testing.md.

use strict;
use warnings;

use Exporter 'import';
use Test::More;

use Test::AMonitor::Util qw(wait_for sleep_loop free_port uuid4
    encode_json decode_json try_decode_json now_ms tscale default_timeout
    json_text mute_listener prometheus_samples dedupe_tally);
use Test::AMonitor::Nginx;
use Test::AMonitor::Log qw(error_log_like no_error_log wait_error_log
    scan_log_text);
use Test::AMonitor::Panel qw(panel_connect panel_try_connect
    panel_handshake_status panels_per_worker);
use Test::AMonitor::FakeSDK qw(fake_sdk);
use Test::AMonitor::Raw qw(raw_connect raw_ws_connect raw_send raw_read
    raw_read_frame raw_http http_request parse_http_response ws_frame
    ws_accept_key raw_eof slow_panel storm_open storm_read raw_sdk_listen
    raw_sdk_accept);
use Test::AMonitor::Blocks qw(run_tests);

our @EXPORT = (
    @Test::More::EXPORT,
    qw(run_tests fake_sdk panel_connect panel_try_connect
    panel_handshake_status error_log_like no_error_log wait_error_log
    nginx_t current_nginx wait_for sleep_loop free_port uuid4 encode_json
    decode_json try_decode_json json_text now_ms tscale default_timeout
    raw_connect raw_ws_connect raw_send raw_read raw_read_frame raw_http
    http_request parse_http_response ws_frame ws_accept_key raw_eof
    slow_panel storm_open storm_read raw_sdk_listen raw_sdk_accept
    scan_log_text panels_per_worker
    mute_listener prometheus_samples dedupe_tally)
);

our $REPO = $Test::AMonitor::Nginx::REPO;


# Test::AMonitor->new(%opt): a Test::AMonitor::Nginx instance
sub new {
    my ($class, %opt) = @_;
    return Test::AMonitor::Nginx->new(%opt);
}

# the last nginx instance made
sub current_nginx { Test::AMonitor::Nginx->current }

# nginx_t(%parts): "nginx -t" on the current instance (or a new one)
sub nginx_t { Test::AMonitor::Nginx::nginx_t(@_) }


1;

__END__

=head1 NAME

Test::AMonitor - nginx + WebSocket test harness for ngx_http_amonitor_module

=head1 SYNOPSIS

Data-driven:

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::AMonitor;

    run_tests();

    __DATA__

    === TEST 1: panel handshake succeeds
    --- config
        location /panel { amonitor_panel on; }
    --- ws_request: /panel
    --- ws_send
    {"msg_id":"m1","type":"action","target_id":"nope","payload":{"action":"restart"}}
    --- ws_expect_like
    "type":"error".*"code":"UNKNOWN_TARGET"
    --- no_error_log
    [error]

Programmatic:

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::AMonitor;

    my $t = Test::AMonitor->new(workers => 4);
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0.2);
    $t->write_config(
        http_config => 'amonitor_target a ws://127.0.0.1:%%PORT_1%%/;',
        config      => 'location /ws/panel { amonitor_panel on; }',
    )->run;
    ok $sdk->wait_connections(4), 'every worker dialed the SDK';
    my $p = $t->panel('/ws/panel');
    ok $p->recv_type('heartbeat'), 'heartbeat reaches the panel';
    done_testing();

=head1 DESCRIPTION

C<use Test::AMonitor> exports Test::More's functions and the helpers
below; do not C<use Test::More> after it.  End every file with
C<done_testing()> (C<run_tests> calls it): before the plan is written,
all nginx instances are stopped (QUIT) and one more test checks their logs
(see L</"The final check">).  A numeric plan (C<plan tests =E<gt> N>)
does not get that test; use C<done_testing>.

The functions and methods below live in the parts this facade loads:
L<Test::AMonitor::Nginx> (nginx control; C<Test::AMonitor-E<gt>new>
returns one), L<Test::AMonitor::Process>, L<Test::AMonitor::Log> (logs
and the final check), L<Test::AMonitor::Panel>,
L<Test::AMonitor::FakeSDK>, L<Test::AMonitor::Raw>,
L<Test::AMonitor::Blocks> (data sections), L<Test::AMonitor::Util>.
One style per test file: data blocks or code.

=head1 ENVIRONMENT

=over

=item TEST_NGINX_BINARY

nginx to run (default F</usr/sbin/nginx>).

=item TEST_AMON_MODULE

module to load (default F<build/nginx/ngx_http_amonitor_module.so>).

=item TEST_AMON_LEAVE

keep the temporary prefix and print its path.

=item TEST_AMON_CATLOG

print every log file of every instance at the end.

=item TEST_AMON_VERBOSE

print configs, commands and WebSocket traffic.

=item TEST_NGINX_VALGRIND

run nginx under valgrind: C<daemon off;>, the master and its forked
workers under valgrind, one log per process; errors and definite leaks
fail the final check.  C<TEST_NGINX_VALGRIND=single> runs one process
instead (C<master_process off;>: C<workers> has no effect, C<reload>
restarts).  Extra valgrind options: TEST_NGINX_VALGRIND_OPTS.

=item TEST_AMON_TIMEOUT_SCALE

multiply default timeouts (valgrind: 8, TEST_AMON_SANITIZER: 2).

=back

=head1 NGINX CONTROL

=over

=item Test::AMonitor->new(%opt)

A fresh temporary prefix.  Options: C<module> (1; 0 = no C<load_module>),
C<workers> (1), C<worker_connections> (1024), C<log_level> (C<debug> when
the binary has it, else C<info>), C<binary>, C<module_path>,
C<valgrind>, C<start_timeout>, C<stop_timeout> (10 s).

=item $t->port($n)

The port of C<%%PORT_n%%>: a free port, locked with flock on
F</tmp/amon-test-ports/PORT.lock> for the life of the process.
C<free_port()> gives another one outside any instance.

=item $t->write_config(%parts)

C<main_config>, C<events_config>, C<http_config>, C<config> (inside
C<server { listen 127.0.0.1:%%PORT_0%%; ... }>), C<server =E<gt> 0> (no
server block), or C<conf> (everything after the harness's own lines).
The harness writes C<load_module>, C<daemon>, C<master_process>,
C<worker_processes>, C<error_log PREFIX/error.log debug>, C<pid>,
C<events>, and per-prefix temp paths and access log.  Placeholders:
C<%%PORT_n%%>, C<%%PREFIX%%>, C<%%REPO%%>, C<%%TESTDIR%%>.  Returns $t.

=item $t->conf_text

The nginx.conf that C<run> writes.

=item $t->run / $t->try_run / $t->start_error

Start nginx (C<-p PREFIX -c nginx.conf -e error.log>) and wait for the
pid file, every C<listen> port to accept and all workers to run.  C<run>
dies on failure with the error log tail; C<try_run> returns false.

=item $t->stop(timeout => S)

QUIT and wait; TERM and KILL after the timeout, recorded as a problem
that fails the final check.  Returns 1 on a clean stop.

=item $t->restart

=item $t->reload(timeout => S)

Rewrite nginx.conf from the current parts, send HUP (as C<nginx -s
reload> does), wait for a full set of new workers.  Returns 0 when nginx
logged C<[emerg]> (use C<ignore_log> for that test) or on timeout.
Without a master process (C<TEST_NGINX_VALGRIND=single>) it restarts
nginx instead.

=item $t->nginx_t(%parts) / nginx_t(%parts)

C<nginx -t> on a configuration (the current parts when none are given)
in a scratch directory; returns C<($exit_status, $output)>.  Its log is
not part of the final check.

=item $t->master_pid, $t->worker_pids, $t->child_pids, $t->is_running,
$t->prefix, $t->valgrind, $t->single_process, $t->effective_workers,
$t->workers($n), $t->module($on)

=item $t->write_file($name, $text)

Write a file into the prefix (placeholders filled); returns its path.

=item $t->url($path, $n), $t->ws_url($path, $n)

C<http://127.0.0.1:PORT_n$path> and C<ws://...>.

=item $t->http_get($path, %headers), $t->http($method, $path, headers =>
{}, body => '')

HTTP/1.1 request with C<Connection: close>; returns C<{ code, headers
(lower-case names), body, raw }>.

=item $t->panel($path, %opt)

C<panel_connect($t-E<gt>ws_url($path), %opt)>.

=back

=head1 LOGS

=over

=item $t->mark_log

The log helpers look only at lines written after the mark (initially
the whole log; C<run_tests> marks before each block).

=item $t->read_error_log(all => 1), $t->error_log_path, $t->log_count($re)

=item error_log_like($re, $name, $timeout), no_error_log($re, $name)

Tests on the current instance's log (also as methods).  C<$re> is a
Regexp or a literal string.  C<error_log_like> waits up to C<$timeout>.

=item wait_error_log($re, $timeout)

Returns true once the log matches.

=item $t->ignore_log($re, ...)

Lines matching are not held against the final check (e.g. an expected
C<[emerg]> on a reload with a bad configuration).

=item scan_log_text($text, @ignore)

The offending lines of a text (used by the final check).

=back

=head2 The final check

One test per file, run by C<done_testing>: every instance is stopped,
then its F<error.log>, the launcher's stderr and any valgrind logs must
have no C<[alert]>, C<[crit]>, C<[emerg]>, C<ERROR: AddressSanitizer>,
C<ERROR: LeakSanitizer>, C<runtime error:>, C<exited on signal>,
valgrind C<ERROR SUMMARY: N> (NE<gt>0), and no stop may have needed
TERM/KILL.

=head1 PANELS

=over

=item panel_connect($url, headers => {}, timeout => 5, protocols => [])

A connected L<Test::AMonitor::Panel>, or dies with the HTTP status and
body.

=item panel_try_connect($url, %opt)

C<($panel_or_undef, $res)>, C<$res = { code, message, headers, body,
error }>.

=item panel_handshake_status($url, %opt)

The handshake's HTTP status (101 on success; the panel is then closed).

=item Panel methods

C<send_text($s)>, C<send_binary($b)>, C<send_json($ref)>,
C<send_frame($fin, $rsv1, $rsv2, $rsv3, $opcode, $payload)>,
C<flush>, C<recv($timeout)> (C<{ type =E<gt> 'text'|'binary', data,
json }> or undef), C<recv_json($timeout)>, C<recv_until(sub { ... },
$timeout)>, C<recv_type($type, timeout =E<gt> S, field =E<gt> value ...)>
(fields of the envelope or its payload), C<messages>, C<pending>,
C<clear>, C<ping($payload, $timeout)> (true when the pong came),
C<send_action($msg_id, $target, $url)> (a C<restart>, with
C<target_url> when C<$url> is given), C<answers_to($msg_id)> (every
C<action_ack> and C<error> about that action received so far),
C<pings_received>, C<close($code, $reason)>, C<drop> (TCP close),
C<wait_closed($timeout)>, C<close_code> (the code of the server's Close
frame, 1006 if none), C<close_reason>, C<is_open>, C<pause> / C<resume>
(stop/start reading: a slow panel).

=back

=head1 OTHER HELPERS

=over

=item mute_listener()

A listening socket on 127.0.0.1 whose connections nobody accepts: a
target there never answers its handshake (C<-E<gt>sockport>).

=item prometheus_samples($text)

The Prometheus text parsed by python3-prometheus-client: an array of
C<[name, {labels}, value, family, type]>, undef when it does not parse.

=item dedupe_tally($sdk, \%answers, \@ids, $npanels)

Several panels sent each msg_id at once; C<$answers{$id}[$i]> lists the
answers panel C<$i> got for C<$id>.  Checks that the SDK ran each once
and that each has one real ack and, for every other panel, a final
"duplicate ignored" (pending, or done with the stored ack).  Returns
C<{ not_once, bad_count, bad_mix }> (lists of what is wrong, empty when
all is well) and C<winners> (panel index =E<gt> real acks).

=back

=head1 FAKE SDK

=over

=item fake_sdk(%opt)

A L<Test::AMonitor::FakeSDK>: WebSocket server on
C<ws://127.0.0.1:PORT/> (any path).  Options: C<port> (default: a free
one), C<target_id> ('demo-target'), C<heartbeat_interval> (5 s; 0: only
the heartbeat on open), C<token> (require C<Authorization: Bearer
TOKEN>, else close 4401), C<actions> (C<{ name =E<gt> [success, message]
}>; C<restart> defaults to C<[1,'ok']>, others to C<[0, "unsupported
action: NAME"]>), C<ack_delay>, C<no_ack>, C<on_action> (C<sub ($sdk,
$env, $conn) { return ($ok, $msg) or () }>), C<on_message>,
C<register_url> (send a C<register> on open), C<metadata>, C<metrics>,
C<status>.

Heartbeats: C<{"msg_id","type":"heartbeat","target_id","timestamp",
"payload":{"target_id","status":"up","metrics":{...,"seq":"N"}}}>.
Acks: C<{"msg_id":NEW,"type":"action_ack",...,"payload":{"action_msg_id",
"success","message"}}> (C<trace_id> copied).

=item SDK methods

C<port>, C<url>, C<target_id>, C<emit_event($name, $data)> (returns the
msg_id), C<heartbeat>, C<send_all($text_or_ref)>,
C<send_all_binary($bytes)>, C<actions> (action envelopes received,
decoded), C<actions_raw> (the same as received),
C<executed($msg_id)>, C<wait_actions($n, $timeout)>, C<acks>,
C<received>, C<handshakes> (C<{ path, headers }>), C<rejected>,
C<conn_ids>, C<send_to($id, $text_or_ref)>, C<send_binary_to($id,
$bytes)>, C<send_frames(@frames)>, C<send_frames_to($id, @frames)>
(frames C<[fin, rsv1, rsv2, rsv3, opcode, payload]>),
C<close_conn($id, $code)> (TCP close when C<$code> is undef),
C<closes> (C<{ conn, code, reason }> per ended connection),
C<closes_of(@ids)> (those of these connections), C<wait_closes(\@ids,
$timeout)> (true once all of them ended), C<received_on($id)>,
C<last_received>, C<controller($id)> (the Mojolicious controller; a
method is better),
C<accepted>, C<heartbeats>, C<connections>, C<wait_connections($n,
$timeout)>, C<stop> (refuse new connections, close open ones with 1001),
C<start>, C<drop_all> (TCP close), C<close_all($code)>, C<pause_accept>
/ C<resume_accept>, C<set(%opt)>.

=item panels_per_worker($t, $sdk, workers => N, batch => 4, tries => 6, path => '/ws/panel')

Opens panels in batches until each of N workers has one, telling them
apart by an event that each worker's connection to C<$sdk> sends.
Returns C<({ conn_id =E<gt> [panels] }, [all panels])>.

=back

=head1 RAW TRAFFIC

C<raw_connect($port, rcvbuf =E<gt>, sndbuf =E<gt>, timeout =E<gt>)>;
C<raw_ws_connect($port, $path, %headers)> returns C<($sock, $response)>
(sock undef unless 101 with the right accept key; a header value undef
removes it; C<-rcvbuf>, C<-sndbuf>, C<-timeout>, C<-method>,
C<-version>, C<-key> are options); C<slow_panel($port, $path, %headers)>
(tiny receive buffer, for a panel that never reads);
C<ws_frame(opcode =E<gt>, payload =E<gt>, fin =E<gt> 1, mask =E<gt> 1,
rsv =E<gt> 0, len_form =E<gt> 'min'|'7'|'16'|'64', len =E<gt>,
mask_key =E<gt>, close_code =E<gt>)>; C<raw_send($sock, $bytes,
$timeout)>; C<raw_read($sock, $n, $timeout)>; C<raw_read_frame($sock,
$timeout)> returns C<{ fin, rsv, opcode, masked, payload, length,
close_code, close_reason }>, C<{ eof =E<gt> 1 }> or undef (timeout);
C<raw_eof($sock)>; C<raw_http($port, $text, $timeout)>;
C<http_request($port, $method, $uri, headers =E<gt>, body =E<gt>)>;
C<parse_http_response($raw)>; C<ws_accept_key($key)>;
C<raw_sdk_listen($port)> and C<raw_sdk_accept($listener, $timeout)> (an
SDK played by hand: the agent's upgrade request answered with a 101, the
socket left to the test, which may never read it).

=head1 UTILITIES

C<wait_for(sub { ... }, $timeout)> (spins the event loop; returns the
true value or undef), C<sleep_loop($s)>, C<free_port()>, C<uuid4()>,
C<encode_json>, C<decode_json>, C<try_decode_json>, C<json_text> (JSON
without Mojo's "\/" escapes, as the original tools write it),
C<now_ms()>,
C<tscale($s)>, C<default_timeout()>, C<current_nginx()>.

=head1 DATA SECTIONS

C<=== TEST n: name> starts a block.  C<--- name: value> (inline) or
C<--- name> followed by lines; filters C<chomp> and C<eval> may follow the
name.  Each block (re)starts nginx in the file's prefix, runs, stops
nginx, then checks the log written during the block (starting and
stopping on QUIT are tests too); a block with an C<nginx_t_*> section
only runs C<nginx -t>.

C<main_config>, C<events_config>, C<http_config>, C<config>, C<workers>,
C<no_module>, C<timeout> (per wait, default 5),
C<fake_sdk> (one SDK per line: C<port=PORT_1 target_id=a token=s
heartbeat_interval=0.2 actions=restart:1:ok,stop:0:no ack_delay=0.5
no_ack=1 connections=N wait=0>; before the requests the harness waits
until each SDK has C<connections> agent connections, default: the
number of workers when the module is loaded),
C<request> (C<METHOD URI>, more lines are the body), C<raw_request>,
C<more_headers>, C<response_code>, C<response_body>,
C<response_body_like>, C<response_headers>, C<response_headers_like>,
C<ws_request> (path), C<ws_headers>, C<ws_handshake_status>,
C<ws_send> (one message per line; C<hex: 0a0b> sends binary),
C<ws_expect_like> (regexes in order), C<ws_script> (C<E<gt> msg>,
C<E<lt> regex>, C<wait S>, C<close CODE>, C<ping>), C<ws_expect_close>,
C<sdk_actions_like>, C<sdk_actions> (count), C<wait>,
C<nginx_t_fails>, C<nginx_t_ok>, C<nginx_t_like>, C<nginx_t_unlike>
(regexes), C<nginx_t_emerg> (the exact [emerg] text), C<nginx_t_emerg_line>
(what the line it names starts with), C<nginx_V_like> (regexes),
C<error_log>, C<no_error_log> (literal lines), C<error_log_like>,
C<no_error_log_like> (regexes), C<ONLY>, C<SKIP>.

=cut
