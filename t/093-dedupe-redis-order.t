# With Redis as the dedupe store, the finish of an action is written to
# Redis before its ack is written to the panel: a panel that has the ack
# and sends the msg_id again, to this agent or to any other, finds the
# result ("done"), not a claim still "pending".  The order is that of the
# worker's system calls, watched with strace: for each action, the write
# to Redis that carries its finish comes before the write to the panel
# that carries its ack.  Redis knows the scripts from the connection's
# setup on, so even the first finish goes in one call.  Starts its own
# redis-server; a missing strace or redis-server is a failure
# (scripts/deps.sh --test installs them).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::Process qw(read_file strace_start strace_stop);

ok(-x $Test::AMonitor::Process::STRACE, 'strace is installed')
    or BAIL_OUT('no strace');
ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my %SCRIPT = Test::AMonitor::Redis::scripts();
my $finish = qr/\Q$SCRIPT{finish}{sha}\E|\Q$SCRIPT{finishes}{sha}\E
    |amonitor\ finish/x;

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);

my $sdk = fake_sdk(target_id => 'ro-a', heartbeat_interval => 0);
my $sport = $sdk->port;

my $t = Test::AMonitor->new(workers => 1);
$t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis ${\ $redis->addr } prefix=ro:;
    amonitor_target ro-a ws://127.0.0.1:$sport/;
    amonitor_dedupe_ttl 1h;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }')->run;
ok($sdk->wait_connections(1, 5), 'the agent dialed the SDK');

ok(wait_error_log(qr/connected to redis/, 5), 'the agent is connected to redis');

# a new connection teaches Redis the scripts before its first claim: no
# call meets NOSCRIPT, which would send a finish again a round trip later
for my $name (sort keys %SCRIPT) {
    is($redis->cli('SCRIPT', 'EXISTS', $SCRIPT{$name}{sha}), '1',
        "redis knows the $name script before any action");
}

my $p = $t->panel('/ws/panel');

sub action {
    my ($id) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'ro-a',
        timestamp => now_ms(), payload => { action => 'restart' } });
    return $p->answer_to($id, 5);
}

my $a = action(uuid4());
is($a && $a->{type}, 'action_ack', 'an action through Redis is acked');

my ($worker) = $t->worker_pids;
ok($worker, "the worker's pid ($worker)");

my $trace = $t->prefix . '/strace.txt';
my $spid = strace_start($worker, $trace, '-s', '65536',
    '-e', 'trace=write,writev,sendto,sendmsg');

sub trace_text { read_file($trace) }

# strace has attached once an action's ack shows in the trace
my $attached = wait_for(sub {
    my $id = uuid4();
    action($id);
    return index(trace_text(), $id) >= 0;
}, 10);
ok($attached, 'strace follows the worker') or BAIL_OUT('strace did not attach');

my @ids = map { uuid4() } 1 .. 20;
for my $id (@ids) {
    my $m = action($id);
    is($m && $m->{type}, 'action_ack', "acked: $id")
        or diag(explain($m));
}

# the last ack was read: its finish went out before it
strace_stop($spid);

my @lines = split /\n/, trace_text();
ok(@lines > 40, scalar(@lines) . ' writes traced');

for my $id (@ids) {
    my ($fin, $ack);
    for my $i (0 .. $#lines) {
        next if index($lines[$i], $id) < 0;
        if (!defined $fin && $lines[$i] =~ $finish) {
            $fin = $i;
        }
        if (!defined $ack && $lines[$i] =~ /action_ack/
            && $lines[$i] !~ /EVAL/) {
            $ack = $i;
        }
    }
    ok(defined $fin && defined $ack && $fin < $ack,
        "$id: the finish is written to redis (write "
            . ($fin // 'none') . ') before the ack to the panel (write '
            . ($ack // 'none') . ')');
    ok($redis->done("ro:$id"), "$id: redis holds it as done");
}

is(scalar(grep { $sdk->executed($_) == 1 } @ids), scalar @ids,
    'the SDK ran each once');

done_testing();
