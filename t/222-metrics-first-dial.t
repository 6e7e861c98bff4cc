# amonitor_metrics names every configured target from the start: one
# whose first dial is still under way (here a handshake nobody answers)
# has no record in the zone yet, and was left out of the per-target
# series until that dial ended.  It is now told as down, with no action
# and no failure, once, whichever of the two workers answers; its
# heartbeat age is left out, as for any target that never sent one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $PY = '/usr/bin/python3';
if (system($PY, '-c', 'import prometheus_client') != 0) {
    fail('python3-prometheus-client is needed (scripts/deps.sh installs it)');
    done_testing();
    exit;
}

my $t = Test::AMonitor->new(workers => 2);
my $sa = fake_sdk(port => $t->port(1), target_id => 'up-a',
    heartbeat_interval => 0);

# the kernel completes the TCP connection, nobody answers the handshake
my $mute = mute_listener();
my $mute_port = $mute->sockport;

$t->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_target up-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target "slow \\"b\\"" ws://127.0.0.1:$mute_port/;
    amonitor_connect_timeout 6s;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /metrics { amonitor_metrics; }
    }
EOC
)->run;

# every sample: [name, labels, value]
sub scrape { return prometheus_samples($t->http_get('/metrics')->{body}) }

sub samples {
    my ($r, $name, $target) = @_;
    return grep {
        $_->[0] eq $name && ($_->[1]{target} // '') eq $target
    } @$r;
}

ok($sa->wait_connections(2), 'both workers dialed up-a');
# the SDK has seen the handshakes; a worker counts up-a up once it has
# read the answer (a slow build may not have yet)
ok(wait_for(sub {
    my $r = scrape();
    return $r && join(',', map { $_->[2] }
        samples($r, 'amonitor_target_up', 'up-a')) eq '1';
}, 10), 'the agent has up-a up');

# several scrapes, so that both workers answer some
my $slow = 'slow "b"';
for my $i (1 .. 6) {
    my $r = scrape();
    ok($r, "scrape $i parses") or next;

    my @up = samples($r, 'amonitor_target_up', $slow);
    is(scalar @up, 1, "scrape $i: the target still dialing is named once");
    is($up[0] && $up[0][2], 0, "scrape $i: it is down");
    is(join(',', map { $_->[2] }
        samples($r, 'amonitor_target_actions_total', $slow),
        samples($r, 'amonitor_target_failures_total', $slow)), '0,0',
        "scrape $i: no action, no failure");
    is(scalar(samples($r, 'amonitor_target_last_heartbeat_age_seconds',
        $slow)), 0, "scrape $i: no heartbeat age");
    is(join(',', map { $_->[2] } samples($r, 'amonitor_target_up', 'up-a')),
        '1', "scrape $i: up-a is up, once");
}

$t->ignore_log(qr/\[error\].*(?:timed out|slow)/);
$t->stop;
$sa->stop;
done_testing;
