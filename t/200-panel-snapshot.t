# A panel that connects first receives what the zone knows, whichever of
# the 2 workers it lands on: the target_status of every target (state,
# "since", "reason") and the last heartbeat of each target that has one,
# bytes unchanged; then live traffic, with nothing repeated or reordered.
# "amonitor_panel_snapshot off" turns it off for a location.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $sa = fake_sdk(port => $t->port(1), target_id => 'snap-a',
    heartbeat_interval => 0);
# snap-b is configured but nothing listens there: down, cannot connect

my $t0 = now_ms();

$t->write_config(
    server      => 0,
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target snap-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target snap-b ws://127.0.0.1:%%PORT_2%%/;
    amonitor_reconnect 50ms 200ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
        location = /ws/live {
            amonitor_panel on;
            amonitor_panel_snapshot off;
        }
    }
EOC
)->run;

ok($sa->wait_connections(2), 'both workers dialed snap-a');
my @cids = sort { $a <=> $b } $sa->conn_ids;
is(scalar(@cids), 2, 'one connection per worker');

# heartbeats fanned out by the workers (kept in the zone before that)
sub forwarded {
    my $s = try_decode_json($t->http_get('/status')->{body} // '') // {};
    return $s->{forwarded} // 0;
}

# the fake SDK's heartbeats on connect must be in before ours
ok(wait_for(sub { forwarded() >= 2 }, 5),
    'each connection\'s first heartbeat went through');

# the first heartbeat goes over one worker's connection only: the zone
# keeps it, and panels on the other worker must be told it too
my $hb1 = FakeHB->make($sa, 1);
$sa->send_to($cids[0], $hb1);
ok(wait_for(sub { forwarded() >= 3 }, 5), 'the worker took it');

my ($by_worker, $all) = panels_per_worker($t, $sa, workers => 2);
is(scalar(keys %$by_worker), 2, 'panels on both workers');

for my $cid (sort keys %$by_worker) {
    my $p = $by_worker->{$cid}[0];
    my @m = $p->messages;
    my $name = $p->name . " (worker of connection $cid)";

    # the snapshot: two target_status, one heartbeat, before any live frame
    my @snap = grep { !defined($_->{json}) || ($_->{json}{type} // '') ne
        'event' } @m[0 .. 2];
    is(scalar(@snap), 3, "$name: three snapshot messages come first");

    my %st = map { $_->{json}{payload}{target_id} => $_->{json} }
        grep { ($_->{json}{type} // '') eq 'target_status' } @snap;
    is(join(',', sort keys %st), 'snap-a,snap-b',
        "$name: a target_status for each target");

    my $a = $st{'snap-a'}{payload} // {};
    is($a->{state}, 'up', "$name: snap-a is up");
    ok(($a->{since} // 0) >= $t0 - 1000 && $a->{since} <= now_ms(),
        "$name: snap-a up since a time within the test");
    ok(!exists $a->{reason}, "$name: no reason for an up target");
    is($a->{url}, "ws://127.0.0.1:" . $t->port(1) . "/",
        "$name: snap-a's url");

    my $b = $st{'snap-b'}{payload} // {};
    is($b->{state}, 'down', "$name: snap-b is down");
    is($b->{reason}, 'cannot connect', "$name: and why");
    ok(($b->{since} // 0) >= $t0 - 1000, "$name: snap-b down since then");

    my ($hb) = grep { ($_->{json}{type} // '') eq 'heartbeat' } @snap;
    ok($hb, "$name: the last heartbeat is in the snapshot");
    is($hb && $hb->{data}, $hb1, "$name: with the SDK's bytes");
}

# no duplicates: the worker that had not received hb1 gets it now (as
# from an SDK that sends one envelope to every connection); its panels
# were told it by the snapshot and must not get it twice.  The next one
# is new for everybody.
my ($pa) = @{ $by_worker->{ $cids[1] } // [] };
my ($pb) = @{ $by_worker->{ $cids[0] } // [] };
$_->clear for @$all;
$sa->send_to($cids[1], $hb1);
my $hb2 = FakeHB->make($sa, 2);
$sa->send_to($cids[1], $hb2);
$sa->send_to($cids[0], $hb2);
$sa->emit_event('after', 'x');

for my $p (grep { defined } $pa, $pb) {
    my $ev = $p->recv_until(sub { ($_[0]{json}{type} // '') eq 'event'
        && ($_[0]{json}{payload}{event_name} // '') eq 'after' }, 5);
    ok($ev, $p->name . ': live event arrived');
    my @hb = grep { ($_->{json}{type} // '') eq 'heartbeat' }
        grep { defined $_->{json} } $p->messages;
    my @seq = map { $_->{json}{payload}{metrics}{seq} } @hb;
    is(join(',', @seq), '1,2', $p->name . ': heartbeats 1 (snapshot) and 2 '
        . '(live), once each, in order');
}

# an SDK going down shows in the snapshot of a panel opened later, as a
# lost connection, also after the dials that failed since (every 200 ms)
$sa->stop;
sleep_loop(1);
my $why;
ok(wait_for(sub {
    my $q = $t->panel('/ws/panel', name => 'later');
    my $m = $q->recv_type('target_status', target_id => 'snap-a',
        timeout => 2);
    my $j = $m ? $m->{json}{payload} : {};
    $why = $j->{reason};
    $q->close(1000);
    ($j->{state} // '') eq 'down';
}, 10), 'after the SDK stops, a new panel is told snap-a is down');
is($why, 'connection lost', 'and why: the connection was lost');
ok($t->log_count(qr/cannot connect to the SDK/) > 0,
    'while the agent failed to dial it again');

# live traffic only where the snapshot is off
$sa->start;
ok($sa->wait_connections(2), 'snap-a back');
my $live = $t->panel('/ws/live', name => 'live-only');
my $first = $live->recv(1.5);
ok(!defined $first, 'with amonitor_panel_snapshot off, no snapshot')
    or diag("got: $first->{data}");
$sa->heartbeat;
my $lh = $live->recv_type('heartbeat', timeout => 5);
ok($lh, 'and live heartbeats still arrive');

$t->stop;
done_testing;


# a heartbeat envelope with a fixed msg_id, as JSON text
package FakeHB;

sub make {
    my ($class, $sdk, $seq) = @_;
    my $env = {
        msg_id    => "hb-snap-$seq",
        type      => 'heartbeat',
        target_id => $sdk->target_id,
        timestamp => main::now_ms(),
        payload   => { target_id => $sdk->target_id, status => 'ok',
            metrics => { cpu_percent => '1.5', seq => "$seq" } },
    };
    return Test::AMonitor::FakeSDK::to_json($env);
}
