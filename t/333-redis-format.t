# The format of what the agents keep in Redis (amonitor_redis): every
# connection's setup and every tick of a connection that sends commands
# write prefix + "format" (this build's format, with a TTL of 3 x lease)
# or find it.  A key that holds another format (agents of another
# release on the same prefix) refuses the connection: an error line says
# which formats, actions are answered INTERNAL and never run, the cluster
# bus is left (its subscriptions go), panels stay open; once the key is
# gone (its agents left and it expired) every agent comes back by itself.
# An agent that starts while the key holds another format never becomes
# ready.  A msg_id "format" is kept apart from the key; a Redis out of
# memory (the key cannot be written) does not fail the check; another
# error of the check (a key of another type) is an ordinary refusal.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Mojo::JSON qw(encode_json);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $sdk = fake_sdk(target_id => 'v1', heartbeat_interval => 0);
my $sport = $sdk->port;

# redis lease 1.5 s: a tick every 500 ms, the key's TTL 4.5 s
sub agent {
    my ($name, $cluster) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    my $cl = $cluster ? "    amonitor_cluster on lease=1500ms;\n"
        . "    amonitor_instance_id $name;\n" : '';
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-v: timeout=300ms
        lease=1500ms;
$cl    amonitor_target v1 ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 2s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /metrics { amonitor_metrics; }')->run;
    return $t;
}

sub redis_conns {
    my ($t) = @_;
    return ($t->http_get('/metrics')->{body}
        =~ /^amonitor_redis_connections (\d+)$/m)[0] // -1;
}

sub re { my $s = shift; return qr/$s/ }

sub numsub {
    return ($redis->cli('PUBSUB', 'NUMSUB', 'amon-v:ev') =~ /(\d+)\z/)[0]
        // -1;
}

# the answer $a is the SDK's successful ack / an INTERNAL refusal
sub acked {
    my ($a, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success}, $name)
        or diag(encode_json($a // {}));
}

sub refused {
    my ($a, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($a && $a->{payload}{code}, 'INTERNAL', $name)
        or diag(encode_json($a // {}));
}

sub ask {
    my ($p, $id) = @_;
    $id //= uuid4();
    $p->send_action($id, 'v1');
    return ($p->answer_to($id, 5), $id);
}

my %I = map { $_ => agent($_, 1) } qw(A B);
ok($sdk->wait_connections(1, 5), 'v1 is dialed once in the cluster');
ok(wait_for(sub { numsub() == 2 }, 5), 'both workers are on the bus');

my %P = map { $_ => $I{$_}->panel('/ws/panel', name => $_) } qw(A B);

subtest 'the format key' => sub {
    is($redis->cli('GET', 'amon-v:format'), '1', 'the key holds format 1');
    my $ttl = $redis->cli('PTTL', 'amon-v:format');
    ok($ttl > 0 && $ttl <= 4500, "with a TTL of at most 3 x lease ($ttl ms)");
    sleep_loop(2);
    $ttl = $redis->cli('PTTL', 'amon-v:format');
    ok($ttl > 2500, "renewed while the agents run ($ttl ms left after 2 s)");

    # an agent with a longer lease gave it a longer TTL: kept, not cut
    $redis->cli('PEXPIRE', 'amon-v:format', '60000');
    sleep_loop(1.2);
    $ttl = $redis->cli('PTTL', 'amon-v:format');
    ok($ttl > 50000, "a longer TTL is kept ($ttl ms left)");
    $redis->cli('PEXPIRE', 'amon-v:format', '4500');
};

subtest 'a msg_id "format" is kept apart from the key' => sub {
    my ($a) = ask($P{A}, 'format');
    acked($a, 'the action "format" is acked');
    is($redis->cli('GET', 'amon-v:format'), '1', 'the key still holds 1');
    is($redis->cli('EXISTS', 'amon-v:id:format'), '1',
        'its record is under "id:format"');
};

subtest 'agents of another format take the prefix' => sub {
    $_->ignore_log(qr/redis/) for values %I;
    my $accepted = $sdk->accepted;

    # what the agents of another release would write, until they go
    $redis->cli('SET', 'amon-v:format', '2', 'PX', '60000');
    for my $n (qw(A B)) {
        ok($I{$n}->wait_error_log(re('\[error\].*redis 127\.0\.0\.1:'
            . $rport . ' refused "format check": AMONITOR_FORMAT the agents '
            . 'that use this prefix keep format 2 \(key amon-v:format\), '
            . 'this agent keeps format 1'), 2),
            "$n: the error log says which formats");
    }
    ok(wait_for(sub { numsub() == 0 }, 2), 'both workers left the bus');
    for my $n (qw(A B)) {
        ok(wait_for(sub { redis_conns($I{$n}) == 0 }, 2),
            "$n: amonitor_redis_connections is 0");
    }
    sleep_loop(1);
    for my $n (qw(A B)) {
        my $lines = $I{$n}->log_count(qr/refused "format check"/);
        ok($lines == 1, "$n: said once, not at every reconnect ($lines)");
    }

    for my $n (qw(A B)) {
        my ($a, $id) = ask($P{$n});
        refused($a, "$n: an action is refused");
        is($sdk->executed($id), 0, "$n: it did not run");
        ok($P{$n}->is_open, "$n: the panel stays open");
    }
    is($redis->cli('GET', 'amon-v:format'), '2',
        'the other format\'s key is left as it is');

    # its agents are gone: the key expires and every agent comes back
    $redis->cli('PEXPIRE', 'amon-v:format', '300');
    ok(wait_for(sub { $redis->cli('GET', 'amon-v:format') eq '1' }, 5),
        'once it expired the key holds format 1 again');
    ok(wait_for(sub { numsub() == 2 }, 5), 'both workers are on the bus');
    for my $n (qw(A B)) {
        ok(wait_for(sub { redis_conns($I{$n}) == 1 }, 5),
            "$n: amonitor_redis_connections is 1 again");
    }
    sleep_loop(1);
    for my $n (qw(A B)) {
        my ($a, $id) = ask($P{$n});
        acked($a, "$n: an action is acked");
        is($sdk->executed($id), 1, "$n: it ran once");
    }

    # and events go across instances again
    $P{$_}->clear for qw(A B);
    $sdk->heartbeat;
    my $seq = $sdk->{seq};
    for my $n (qw(A B)) {
        ok($P{$n}->recv_until(sub { my $j = $_[0]{json};
            ref $j eq 'HASH' && ($j->{type} // '') eq 'heartbeat'
                && $j->{payload}{metrics}{seq} == $seq }, 3),
            "$n: a heartbeat reaches its panel");
    }
    is($sdk->connections, 1, 'v1 has one agent connection in the cluster');
};

subtest 'another error of the check is an ordinary refusal' => sub {
    $_->mark_log for values %I;
    # in one step: a worker's check between a DEL and an HSET would write
    # the key again, and the HSET would then fail (WRONGTYPE)
    is($redis->cli('EVAL', "redis.call('DEL', KEYS[1]); "
        . "return redis.call('HSET', KEYS[1], 'not', 'a string')", 1,
        'amon-v:format'), '1', 'the format key is now a hash');
    for my $n (qw(A B)) {
        ok($I{$n}->wait_error_log(qr/refused "format check": .*WRONGTYPE/,
            2), "$n: the error is logged");
        ok(wait_for(sub { redis_conns($I{$n}) == 0 }, 2),
            "$n: the dedupe store's connection is refused too (next tick)");
        my ($a, $id) = ask($P{$n});
        refused($a, "$n: an action is refused");
        is($sdk->executed($id), 0, "$n: it did not run");
        is($I{$n}->log_count(qr/AMONITOR_FORMAT/), 0,
            "$n: not taken for another format");
    }
    my @seen = map { sleep_loop(0.2); numsub() } 1 .. 8;
    is("@seen", join(' ', (2) x 8),
        'the workers stay subscribed over 1.6 s (no other format there)');
    $redis->cli('DEL', 'amon-v:format');
    ok(wait_for(sub { $redis->cli('GET', 'amon-v:format') eq '1' }, 5),
        'the key deleted, it holds format 1 again');
    sleep_loop(1);
    for my $n (qw(A B)) {
        my ($a, $id) = ask($P{$n});
        acked($a, "$n: an action is acked");
    }
};

subtest 'a redis out of memory does not fail the check' => sub {
    $_->mark_log for values %I;
    $redis->cli('CONFIG', 'SET', 'maxmemory', '1');
    like($redis->cli('SET', 'amon-v:x', 'y'), qr/^OOM/,
        'redis refuses writes (noeviction, over maxmemory)');
    sleep_loop(2);
    for my $n (qw(A B)) {
        is($I{$n}->log_count(qr/format check|lost the connection/), 0,
            "$n: four ticks later no check has failed");
    }
    is(numsub(), 2, 'both workers are still on the bus');
    $redis->cli('CONFIG', 'SET', 'maxmemory', '0');
};

subtest 'an agent that starts while another format holds the key' => sub {
    $redis->cli('SET', 'amon-v:format', '7');
    my $C = Test::AMonitor->new(workers => 1, log_level => 'info');
    $C->ignore_log(qr/redis/);
    $C->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-v: timeout=300ms;
    amonitor_target v1 ws://127.0.0.1:$sport/;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    ok($C->wait_error_log(re('refused "format check": AMONITOR_FORMAT .*'
        . 'keep format 7 .*this agent keeps format 1'), 3),
        'its error log says so');
    ok(!$C->log_count(qr/\] \d+#\d+: amonitor: connected to redis/),
        'it never became ready');
    my $p = $C->panel('/ws/panel', name => 'C');
    my ($a, $id) = ask($p);
    refused($a, 'its action is refused');
    is($sdk->executed($id), 0, 'and did not run');

    $redis->cli('DEL', 'amon-v:format');
    ok($C->wait_error_log(qr/connected to redis/, 5),
        'the key deleted, it connects');
    ($a, $id) = ask($p);
    acked($a, 'its action is acked');
    is($sdk->executed($id), 1, 'and ran once');
    $C->stop;
};

$_->stop for values %I;
$redis->stop;
done_testing();
