# amonitor_metrics: the Prometheus text exposition format 0.0.4, parsed
# by a real parser (Debian's python3-prometheus-client), with 2 workers:
# counters and gauges with amonitor_ names, per-target series, and the
# action round-trip histogram summed across the workers through the zone;
# with amonitor_redis, the workers connected, the claims open (through a
# reload) and the refusals at claims=.
# The numbers are checked against the traffic the test sent.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use File::Temp qw(tempfile tempdir);

my $PY = '/usr/bin/python3';
if (system($PY, '-c', 'import prometheus_client') != 0) {
    fail('python3-prometheus-client is needed (scripts/deps.sh installs it)');
    done_testing();
    exit;
}

my $t = Test::AMonitor->new(workers => 2);
my $sa = fake_sdk(port => $t->port(1), target_id => 'pm-a',
    heartbeat_interval => 0, ack_delay => 0.02,
    actions => { restart => [1, 'ok'], fail => [0, 'it broke'] });

$t->write_config(
    server      => 0,
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target pm-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target "pm \"b\"" ws://127.0.0.1:%%PORT_2%%/;
    amonitor_reconnect 50ms 200ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /metrics { amonitor_metrics; }
    }
EOC
)->run;

ok($sa->wait_connections(2), 'both workers dialed pm-a');

# parsed by prometheus_client: the samples and the families' types
sub scrape {
    my $body = $t->http_get('/metrics');
    my $samples = prometheus_samples($body->{body}) or return (undef, $body);
    return ({ samples => $samples,
        families => { map { ($_->[3] => $_->[4]) } @$samples } }, $body);
}

sub value {
    my ($r, $name, %labels) = @_;
    for my $s (@{ $r->{samples} }) {
        next unless $s->[0] eq $name;
        next if grep { ($s->[1]{$_} // '') ne $labels{$_} } keys %labels;
        return $s->[2];
    }
    return undef;
}

# both workers' connections are counted once their handshakes are done
my ($r, $res);
wait_for(sub {
    ($r, $res) = scrape();
    return $r && (value($r, 'amonitor_upstream_connections') // 0) == 2;
}, 10);
ok($r, 'the output parses') or diag($res->{body});
like($res->{headers}{'content-type'} // '', qr{^text/plain; version=0\.0\.4},
    'content type of the text format 0.0.4');
is($r->{families}{amonitor_action_rtt_seconds}, 'histogram',
    'the round trip is a histogram');
is($r->{families}{amonitor_actions}, 'counter', 'actions is a counter');
is($r->{families}{amonitor_panels}, 'gauge', 'panels is a gauge');
is(value($r, 'amonitor_target_up', target => 'pm-a'), 1, 'pm-a is up');
is(value($r, 'amonitor_target_up', target => 'pm "b"'), 0,
    'the other target is down, its name escaped and parsed back');
is(value($r, 'amonitor_upstream_connections'), 2,
    'two upstream connections, both workers counted');

# traffic: panels on both workers, N actions, 2 failing, 1 duplicate
my ($by_worker, $all) = panels_per_worker($t, $sa, workers => 2);
is(scalar(keys %$by_worker), 2, 'panels on both workers');
my @two = map { $by_worker->{$_}[0] } sort keys %$by_worker;
my $N = 10;
my @ids;
for my $i (1 .. $N) {
    my $p = $two[ $i % 2 ];
    my $id = "pm-$i-" . uuid4();
    push @ids, [$p, $id];
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'pm-a',
        payload => { action => $i <= 2 ? 'fail' : 'restart' } });
}
# acks of one panel may come in any order: collect them all
my %want = map { $_->[1] => 1 } @ids;
my %acked;
wait_for(sub {
    for my $p (@two) {
        while (my $m = $p->recv(0.01)) {
            my $j = $m->{json} // next;
            $acked{ $j->{payload}{action_msg_id} // '' }++
                if ($j->{type} // '') eq 'action_ack';
        }
    }
    !grep { !$acked{$_} } keys %want;
}, 10);
my $acks = grep { $acked{$_} } keys %want;
is($acks, $N, "$N actions acked");
$two[0]->send_json({ msg_id => $ids[0][1], type => 'action',
    target_id => 'pm-a', payload => { action => 'fail' } });
ok($two[0]->recv_type('action_ack', action_msg_id => $ids[0][1],
    timeout => 5), 'a repeated msg_id answered');
$sa->heartbeat;
sleep_loop(0.3);

($r) = scrape();
is(value($r, 'amonitor_actions_total'), $N, "amonitor_actions_total is $N");
is(value($r, 'amonitor_duplicates_total'), 1, 'one duplicate');
is(value($r, 'amonitor_action_outcomes_total', outcome => 'ack'), $N,
    'outcome ack');
is(value($r, 'amonitor_action_outcomes_total', outcome => 'duplicate'), 1,
    'outcome duplicate');
is(value($r, 'amonitor_target_actions_total', target => 'pm-a'), $N,
    'per target: actions');
is(value($r, 'amonitor_target_failures_total', target => 'pm-a'), 2,
    'per target: the 2 failed acks');
is(value($r, 'amonitor_action_rtt_seconds_count'), $N,
    "histogram count $N, actions of both workers");
is(value($r, 'amonitor_action_rtt_seconds_bucket', le => '+Inf'), $N,
    '+Inf bucket equals the count');
my $sum = value($r, 'amonitor_action_rtt_seconds_sum') // -1;
ok($sum >= $N * 0.015 && $sum < $N * 5,
    "the sum reflects the SDK's 20 ms ack delay ($sum s)");
ok((value($r, 'amonitor_action_rtt_seconds_bucket', le => '0.01') // 1) == 0,
    'no round trip under 10 ms (the SDK waits 20 ms)');
is(value($r, 'amonitor_panels'), scalar(@$all), 'panels gauge');
my $age = value($r, 'amonitor_target_last_heartbeat_age_seconds',
    target => 'pm-a');
ok(defined $age && $age >= 0 && $age < 5, "heartbeat age ($age s)");
cmp_ok(value($r, 'amonitor_forwarded_total'), '>=', 2,
    'forwarded counts the heartbeats and events');

ok(!defined value($r, 'amonitor_redis_connections'),
    'no Redis series without amonitor_redis');
$t->stop;

# with amonitor_redis: the workers connected to Redis, 2 then 0 when it
# stops (the file starts its own redis-server, as 091-dedupe-redis does)
my $REDIS = '/usr/bin/redis-server';
ok(-x $REDIS, 'redis-server is installed');
my $rport = free_port();
my $rdir = tempdir('amon-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system($REDIS, '--port', $rport, '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--daemonize', 'yes', '--dir', $rdir,
    '--pidfile', "$rdir/redis.pid", '--logfile', "$rdir/redis.log");
ok(wait_for(sub { `redis-cli -p $rport PING 2>/dev/null` =~ /PONG/ }, 5),
    'redis-server started');

# an SDK that acks after 1.5 s holds the claims of its actions open
my $slow = fake_sdk(port => $t->port(3), target_id => 'pm-slow',
    heartbeat_interval => 0, ack_delay => 1.5);
$t->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_redis 127.0.0.1:$rport claims=2;
    amonitor_target pm-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target pm-slow ws://127.0.0.1:%%PORT_3%%/;
    amonitor_reconnect 50ms 200ms;
    amonitor_ack_timeout 5s;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /metrics { amonitor_metrics; }
    }
EOC
)->run;
ok(wait_for(sub { ((scrape())[0] && value((scrape())[0],
    'amonitor_redis_connections') // -1) == 2 }, 10),
    'amonitor_redis_connections is 2: both workers connected');
ok($slow->wait_connections(2), 'both workers dialed pm-slow');
($r) = scrape();
is($r->{families}{amonitor_redis_claims}, 'gauge', 'claims: a gauge');
is($r->{families}{amonitor_redis_claims_refused}, 'counter',
    'refusals: a counter');
is(value($r, 'amonitor_redis_claims'), 0, 'no claim open at rest');
is(value($r, 'amonitor_redis_claims_refused_total'), 0, 'none refused');

# claims=2 per worker: two actions of one panel are held, a third refused
my $sp = $t->panel('/ws/panel');
my @sid = map { uuid4() } 1 .. 3;
$sp->send_json({ msg_id => $_, type => 'action', target_id => 'pm-slow',
    timestamp => now_ms(), payload => { action => 'restart' } })
    for @sid[0, 1];
ok($slow->wait_actions(2, 3), 'two actions reached the slow SDK');
$sp->send_json({ msg_id => $sid[2], type => 'action',
    target_id => 'pm-slow', timestamp => now_ms(),
    payload => { action => 'restart' } });
my $refused = $sp->answer_to($sid[2], 3);
is($refused && $refused->{payload}{code}, 'RATE_LIMITED',
    'the third is refused at claims=');
($r) = scrape();
is(value($r, 'amonitor_redis_claims'), 2, 'amonitor_redis_claims: 2 open');
is(value($r, 'amonitor_redis_claims_refused_total'), 1,
    'amonitor_redis_claims_refused_total: 1');
my %held_acked;
$sp->recv_until(sub {
    my $j = $_[0]{json};
    $held_acked{ $j->{payload}{action_msg_id} } = 1
        if ref $j eq 'HASH' && ($j->{type} // '') eq 'action_ack';
    return $held_acked{ $sid[0] } && $held_acked{ $sid[1] };
}, 5);
ok($held_acked{ $sid[0] } && $held_acked{ $sid[1] }, 'the two held are acked');
ok(wait_for(sub { (value((scrape())[0], 'amonitor_redis_claims') // -1)
    == 0 }, 5), 'and their claims are closed: the gauge is 0 again');

# a reload while claims are open: the old worker's claims leave the gauge
# as that worker ends them, its refusals stay counted
@sid = map { uuid4() } 1 .. 2;
$sp->send_json({ msg_id => $_, type => 'action', target_id => 'pm-slow',
    timestamp => now_ms(), payload => { action => 'restart' } })
    for @sid;
ok($slow->wait_actions(4, 3), 'two more are under way');
is(value((scrape())[0], 'amonitor_redis_claims'), 2, 'two claims open');
ok($t->reload, 'reloaded with the two open');
ok(wait_for(sub { (value((scrape())[0], 'amonitor_redis_claims') // -1)
    == 0 }, 10), 'the gauge is 0 once the old worker ended them');
is(value((scrape())[0], 'amonitor_redis_claims_refused_total'), 1,
    'the refusal is still counted');
my $rpid = do { local (@ARGV, $/) = "$rdir/redis.pid"; <> };
chomp $rpid;
kill 'TERM', $rpid;
ok(wait_for(sub { (value((scrape())[0], 'amonitor_redis_connections')
    // -1) == 0 }, 10), 'and 0 once Redis is gone');
$t->ignore_log(qr/\[error\].*redis/);
$t->stop;
done_testing;
