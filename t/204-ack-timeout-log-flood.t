# A panel's actions to an SDK that never acks cannot flood the error log:
# every action got its own "no ack for action" line at error level (5,500
# lines in 3 s for one panel at amonitor_ack_timeout 200ms). The lines are
# now at most 10 a second per worker; the others are counted and their
# number said in one line (at the next line written, or by the worker's
# tick within a second). Every action is still answered ACK_TIMEOUT and
# counted in ack_timeouts.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'hung',
    heartbeat_interval => 0, no_ack => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 4m;
    amonitor_target hung ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 200ms;
    amonitor_ack_late_window 0;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the SDK is connected');
my $p = $t->panel('/ws/panel');
$t->mark_log;

# 100 actions every 50 ms for 3 s (under amonitor_send_queue: each
# times out after 200 ms)
my ($n, %asked, %timed_out) = (0);
my $start = now_ms();
my $drain = sub {
    while (my $m = $p->recv(0.001)) {
        my $j = $m->{json} // next;
        $timed_out{ $j->{msg_id} }++
            if ($j->{type} // '') eq 'error'
            && ($j->{payload}{code} // '') eq 'ACK_TIMEOUT';
    }
};
while (now_ms() - $start < 3000) {
    for (1 .. 100) {
        my $id = uuid4();
        $asked{$id} = 1;
        $p->send_json({ msg_id => $id, type => 'action', target_id => 'hung',
            payload => { action => 'restart' } });
        $n++;
    }
    sleep_loop(0.05);
    $drain->();
}
my $secs = (now_ms() - $start) / 1000;
wait_for(sub { $drain->(); keys(%timed_out) >= $n }, tscale(10));
is(scalar(grep { $timed_out{$_} } keys %asked), $n,
    "each of the $n actions was answered ACK_TIMEOUT");
is(decode_json($t->http_get('/status')->{body})->{ack_timeouts}, $n,
    'and counted in ack_timeouts');

# the tick says what was left unsaid within a second
sleep_loop(1.5);
my $log = $t->read_error_log;
my $lines = () = $log =~ /\[error\].*amonitor: no ack for action "[^"]+" from target "hung" within 200 ms/g;
my $quiet = 0;
$quiet += $1 while $log =~ /\[error\].*amonitor: no ack within 200 ms for (\d+) more actions, without a line each \(at most 10 lines a second\)/g;
my $summaries = () = $log =~ /no ack within 200 ms for \d+ more actions/g;

diag("$n actions in $secs s: $lines lines, $summaries summaries of $quiet");
ok($lines <= 10 * (int($secs) + 3),
    "at most 10 lines a second ($lines for $n timeouts in ${secs}s)");
ok($summaries <= 2 * (int($secs) + 2),
    "at most two summaries a second ($summaries)");
is($lines + $quiet, $n, 'every timeout has a line or is in a summary');

# a lone timeout later has its own line again
$t->mark_log;
my $id = uuid4();
$p->send_json({ msg_id => $id, type => 'action', target_id => 'hung',
    payload => { action => 'restart' } });
error_log_like(qr/no ack for action "\Q$id\E" from target "hung" within 200 ms/,
    'a later timeout has its line', 5);
no_error_log(qr/more actions, without a line each/, 'and no summary');

done_testing();
