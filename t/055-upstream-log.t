# What an operator reads in the error log while targets are down: every
# line the module writes says "amonitor" and what failed in words; an
# outage of one target is logged once at error, then summarised at most
# once a minute with a count, and its end once; nginx's own lines about
# refused connections stay out of "error"; a panel with a wrong token is
# logged at info only.  Waits for one summary: takes about 65 seconds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Time::HiRes qw(time);

my $t = Test::AMonitor->new;
my $rejecting = fake_sdk(port => $t->port(2), target_id => 'b',
    token => 'right', heartbeat_interval => 0.2);
$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 100ms 500ms;\n"
        . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;\n"
        . "amonitor_target b ws://127.0.0.1:%%PORT_2%%/ token=wrong;",
    config => "location = /ws/panel { amonitor_panel on; "
        . "amonitor_panel_token secret; }\n"
        . "location = /status { amonitor_status; }",
)->run;
my $start = time;

sub errors { $t->log_count(qr/\[error\].*$_[0]/) }

sub failures {
    my %f = map { $_->{id} => $_->{failures} }
        @{ decode_json($t->http_get('/status')->{body})->{targets} };
    return \%f;
}

# --- the first seconds: one line per target --------------------------------

sleep_loop(3);
my $f = failures();
ok($f->{a} >= 5, "target a failed attempts: $f->{a}");
ok($rejecting->rejected >= 5, 'target b rejected attempts: '
    . $rejecting->rejected);

is(errors(qr/amonitor: cannot connect to the SDK: connection refused while connecting to an amonitor SDK, upstream: a, peer: ws:\/\/127\.0\.0\.1:\d+\//),
    1, 'the refused SDK: one line at error, in words, with the upstream');
is(errors(qr/amonitor: SDK rejected the agent's token \(close 4401\).*upstream: b/),
    1, 'the SDK that rejects the token: one line at error');
is($t->log_count(qr/\[(?:error|warn)\]/), 2, 'and nothing else at warn or '
    . 'error');
no_error_log(qr/(?:send|connect|recv)\(\) failed.*\[(?:error|warn)\]|\[(?:error|warn)\].*(?:send|connect|recv)\(\) failed/,
    'no nginx socket line at warn or error');

# --- a panel with a wrong token, a few times ---------------------------------

for my $i (1 .. 4) {
    is(panel_handshake_status($t->ws_url('/ws/panel'),
        headers => { Authorization => 'Bearer nope' }), 401,
        "panel with a wrong token refused ($i)");
}
is($t->log_count(qr/\[info\].*amonitor: panel rejected: missing or wrong token/),
    4, 'each refused panel is one line at info');
is($t->log_count(qr/\[(?:error|warn)\]/), 2, 'none at warn or error');

# --- a minute later: one summary per target ---------------------------------

ok(wait_error_log(qr/SDK still down.*upstream: b/, 75 - (time - $start)),
    'a summary comes about a minute after the first line');
ok(wait_error_log(qr/SDK still down.*upstream: a/, 5), 'for both targets');
my $took = time - $start;
ok($took >= 59 && $took < 75, sprintf('after %.0f s', $took));
my $log = $t->read_error_log;
my ($na, $sa) = $log =~ /\[error\] .*amonitor: SDK still down: (\d+) more failed attempts in (\d+) s, the last: cannot connect to the SDK: connection refused.*upstream: a/;
ok(defined $na && $na >= 60, 'a: the count of attempts since the first line ('
    . ($na // '?') . ')');
ok(defined $sa && $sa >= 59 && $sa <= 65, 'over the minute (' . ($sa // '?')
    . ' s)');
like($log, qr/\[error\] .*amonitor: SDK still down: \d+ more failed attempts in \d+ s, the last: SDK rejected the agent's token \(close 4401\).*upstream: b/,
    'b: with its last reason');
is(errors(qr/SDK still down/), 2, 'one summary each');

# --- recovery: logged once --------------------------------------------------

my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
    heartbeat_interval => 0.2);
ok($sdk->wait_connections(1, 3), 'target a comes up');
ok(wait_error_log(qr/\[error\] .*amonitor: connected to the SDK again after (\d+) failed attempts in \d+ s.*upstream: a/, 3),
    'its recovery is logged at error, the level its outage was logged at');
my ($nr) = $t->read_error_log
    =~ /connected to the SDK again after (\d+) failed attempts.*upstream: a/;
ok(($nr // 0) > ($na // 0), "with all the attempts (" . ($nr // '?') . ')');
sleep_loop(1);
is(errors(qr/connected to the SDK again/), 1, 'once');
is(errors(qr/upstream: b/), 2, 'b, still rejected: no more lines yet');

my @bad = grep { /\[(?:error|warn|crit|alert)\]/ && !/amonitor/ }
    split /\n/, $t->read_error_log;
is(scalar @bad, 0, 'every line at warn and above says amonitor')
    or diag(join "\n", @bad);

$t->stop;
$sdk->stop;
$rejecting->stop;

done_testing();
