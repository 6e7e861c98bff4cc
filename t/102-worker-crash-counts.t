# A worker that dies without closing its connections (a crash, the OOM
# killer: here SIGKILL) leaves nothing counted: the worker the master
# starts in its place clears the dead one's gauges (panels, upstreams
# open) and its part in each target's "up", so a target whose SDK stops
# afterwards is down in /metrics and in a new panel's snapshot, and the
# gauges come back to what is open.  They stayed as the dead worker left
# them until nginx was restarted.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale);

my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $s1 = fake_sdk(port => $t->port(1), target_id => 'c1',
    heartbeat_interval => 0);
my $s2 = fake_sdk(port => $t->port(2), target_id => 'c2',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_reconnect 100ms 300ms;
    amonitor_target c1 ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target c2 ws://127.0.0.1:%%PORT_2%%/;
EOC
    config => <<'EOC',
location = /ws/panel { amonitor_panel on; }
location = /metrics { amonitor_metrics; }
EOC
)->run;

ok($s1->wait_connections(2) && $s2->wait_connections(2),
    'both workers dialed both targets');

sub metric {
    my ($name) = @_;
    my $b = $t->http_get('/metrics')->{body} // '';
    return $b =~ /^\Q$name\E (\S+)$/m ? $1 : -1;
}

my @panels = map { $t->panel('/ws/panel?targets=') } 1 .. 6;
ok(wait_for(sub { metric('amonitor_panels') == 6 }, 5), '6 panels counted');
is(metric('amonitor_upstream_connections'), 4, '4 connections open');

# both workers die at once, with their panels and connections
my @old = $t->worker_pids;
kill 'KILL', @old;
ok(wait_for(sub {
    my @now = $t->worker_pids;
    @now == 2 && !grep({ my $p = $_; grep { $_ == $p } @old } @now)
}, tscale(10)), 'the master started two new workers');
ok(wait_for(sub { $s1->handshakes >= 4 && $s2->handshakes >= 4 }, 10),
    'they dialed both targets again');
$_->drop for @panels;

ok(wait_for(sub { metric('amonitor_upstream_connections') == 4 }, 5),
    'the connections of the new workers only are counted ('
    . metric('amonitor_upstream_connections') . ')');
ok(wait_for(sub { metric('amonitor_panels') == 0 }, 5),
    'no panel counted (' . metric('amonitor_panels') . ')');

# c2's SDK stops: nobody has it open any more
$s2->stop;
ok(wait_for(sub { metric('amonitor_target_up{target="c2"}') == 0 }, 5),
    'c2 is down in /metrics');
is(metric('amonitor_target_up{target="c1"}'), 1, 'c1 is still up');

my $p = $t->panel('/ws/panel');
my $st = $p->recv_type('target_status', target_id => 'c2', timeout => 5);
is($st && $st->{json}{payload}{state}, 'down',
    "a new panel's snapshot says c2 is down");

$t->error_log_like(qr/\[notice\].*amonitor: worker process \d+ exited without closing its connections/,
    'the clearing is logged');
$t->ignore_log(qr/\[alert\].*exited on signal 9|\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->stop;
$s1->stop;

done_testing;
