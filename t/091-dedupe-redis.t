# Idempotency in Redis (amonitor_redis): two nginx instances that share
# one Redis execute a msg_id once between them; the claim carries the
# dedupe TTL; claims of actions that never reached an SDK are released;
# without Redis an action is refused with INTERNAL (never executed
# unchecked), and after Redis comes back the agent reconnects by itself.
# The file starts its own redis-server; a missing redis-server is a
# failure, not a skip (scripts/deps.sh installs it).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use File::Temp qw(tempdir);

my $REDIS = '/usr/bin/redis-server';
ok(-x $REDIS, 'redis-server is installed') or BAIL_OUT('no redis-server');

my $rport = free_port();
my $rdir = tempdir('amon-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub redis_start {
    system($REDIS, '--port', $rport, '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--daemonize', 'yes', '--dir', $rdir,
        '--pidfile', "$rdir/redis.pid", '--logfile', "$rdir/redis.log") == 0
        or return 0;
    return wait_for(sub { redis_cli('PING') eq 'PONG' }, 5);
}

sub redis_stop {
    my $pid = do { local (@ARGV, $/) = "$rdir/redis.pid"; <> } // return;
    chomp $pid;
    kill 'TERM', $pid;
    wait_for(sub { !kill(0, $pid) }, 5);
}

sub redis_cli {
    my $out = `redis-cli -h 127.0.0.1 -p $rport @_ 2>/dev/null`;
    chomp $out;
    return $out;
}

END { redis_stop() }

subtest 'amonitor_redis configuration errors fail nginx -t' => sub {
    my $t = Test::AMonitor->new;
    for my $case (
        [ "amonitor_redis 127.0.0.1:6379;",
            qr/\[emerg\].*"amonitor_redis" requires "amonitor_zone"/ ],
        [ "amonitor_zone z 1m;\namonitor_redis 127.0.0.1:6379 dbx=1;",
            qr/\[emerg\].*invalid parameter "dbx=1" in "amonitor_redis"/ ],
        [ "amonitor_zone z 1m;\namonitor_redis 127.0.0.1:6379 db=x;",
            qr/\[emerg\].*invalid parameter "db=x" in "amonitor_redis"/ ],
        [ "amonitor_zone z 1m;\namonitor_redis no-such-host.invalid;",
            qr/\[emerg\].*host not found in redis address/ ],
        [ "amonitor_zone z 1m;\namonitor_redis 127.0.0.1;\n"
            . "amonitor_redis 127.0.0.1;",
            qr/\[emerg\].*"amonitor_redis" directive is duplicate/ ],
    ) {
        my ($st, $out) = $t->nginx_t(http_config => $case->[0]);
        isnt($st, 0, "nginx -t fails: $case->[0]");
        like($out, $case->[1], 'with the message');
    }
    my ($st, $out) = $t->nginx_t(http_config => "amonitor_zone z 1m;\n"
        . "amonitor_redis localhost:6380 db=2 password=pw prefix=p:;");
    is($st, 0, 'a full amonitor_redis line passes') or diag($out);
};

ok(redis_start(), "redis-server runs on 127.0.0.1:$rport");

my $sdk = fake_sdk(target_id => 'rd-a', heartbeat_interval => 0);
my $sport = $sdk->port;

my $http_config = <<"EOC";
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-test:;
    amonitor_target rd-a ws://127.0.0.1:$sport/;
    amonitor_dedupe_ttl 1h;
    amonitor_ack_timeout 1s;
    amonitor_reconnect 50ms 300ms;
EOC

my @agents;
for my $n (1, 2) {
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => $http_config,
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    push @agents, $t;
}
ok($sdk->wait_connections(4, 5), 'both agents (2 workers each) dialed the SDK');
ok(wait_error_log(qr/connected to redis/, 5),
    'the agents report their redis connection');

my ($pa, $pb) = map { $_->panel('/ws/panel') } @agents;

sub action {
    my ($id, $target) = @_;
    return { msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(), payload => { action => 'restart',
            params => { from => 'redis-test' } } };
}

sub answer {
    my ($p, $id, $timeout) = @_;
    return $p->answer_to($id, $timeout // 5);
}

subtest 'a msg_id executed through one agent is a duplicate on the other' => sub {
    my $id = uuid4();
    $pa->send_json(action($id, 'rd-a'));
    my $a = answer($pa, $id);
    is($a && $a->{type}, 'action_ack', 'agent A: the SDK acked');
    ok($a && !$a->{payload}{duplicate}, 'not a duplicate');

    # Agent A wrote the result to redis before the ack (t/093 follows
    # the order of its writes): the repeat goes to agent B at once
    $pb->send_json(action($id, 'rd-a'));
    my $b = answer($pb, $id);
    diag(explain($b)) unless $b && ($b->{payload}{state} // '') eq 'done';
    like($b && $b->{payload}{message}, qr/duplicate ignored/,
        'agent B: "duplicate ignored"');
    ok($b && $b->{payload}{duplicate}, '"duplicate":true');
    is($b && $b->{payload}{state}, 'done', '"state":"done"');
    ok($b && $b->{payload}{final}, '"final":true');
    is($b && $b->{payload}{original}{message}, 'ok',
        'with the original result from redis');

    # action_status from the other agent: answered from redis
    $pb->send_json({ msg_id => "q-$id", type => 'action_status',
        payload => { action_msg_id => $id } });
    my $m = $pb->recv_until(sub { ($_[0]{json}{msg_id} // '') eq "q-$id" },
        5);
    is($m && $m->{json}{type}, 'action_status', 'action_status answered');
    is($m && $m->{json}{payload}{state}, 'done', 'state "done"');
    is($m && $m->{json}{payload}{result}{message}, 'ok',
        'with the result stored in redis');

    my $never = uuid4();
    $pb->send_json({ msg_id => "q-$never", type => 'action_status',
        payload => { action_msg_id => $never } });
    $m = $pb->recv_until(sub { ($_[0]{json}{msg_id} // '') eq "q-$never" },
        5);
    is($m && $m->{json}{payload}{state}, 'unknown',
        'a msg_id redis never saw: "unknown"');
    ok($m && !exists $m->{json}{payload}{result}, 'without a result');
    is($sdk->executed($id), 1, 'the SDK ran it once');

    my $v = redis_cli('GET', "amon-test:$id");
    like($v, qr/^d\x01\x00\x04rd-a\{/,
        'redis holds it as done, with its target and result');
    my $ttl = redis_cli('PTTL', "amon-test:$id");
    ok($ttl > 3_500_000 && $ttl <= 3_600_000,
        "it expires with amonitor_dedupe_ttl ($ttl ms left)");
};

# any bytes may be in Redis: a stored result that is not JSON, not UTF-8
# or too big for an answer is left out of it, and the answer still comes
sub redis_set_raw {
    my ($key, $value) = @_;
    open(my $fh, '|-', 'redis-cli', '-h', '127.0.0.1', '-p', $rport, '-x',
        'SET', $key) or return;
    print {$fh} $value;
    close $fh;
}

subtest 'a stored result that cannot be sent: the duplicate ack and the '
    . 'status come without it' => sub {
    $_->ignore_log(qr/\[warn\] .*a stored action result cannot be sent/)
        for @agents;
    for my $bad (['dgarbage{', 'not JSON'], ["d\xff\xfe", 'not UTF-8'],
        ['d{"a":"' . ('x' x 3_000_000) . '"}', 'larger than a message'])
    {
        my $id = uuid4();
        redis_set_raw("amon-test:$id", $bad->[0]);
        $pa->send_json(action($id, 'rd-a'));
        my $a = answer($pa, $id);
        is($a && $a->{type}, 'action_ack', "$bad->[1]: a duplicate ack");
        ok($a && $a->{payload}{duplicate} && $a->{payload}{final},
            'final, as a duplicate');
        ok($a && !exists $a->{payload}{original}, 'without the result');
        is($sdk->executed($id), 0, 'not run');

        $pa->send_json({ msg_id => "q-$id", type => 'action_status',
            payload => { action_msg_id => $id } });
        my $st = $pa->recv_type('action_status', timeout => 5,
            action_msg_id => $id);
        is($st && $st->{json}{payload}{state}, 'done',
            'action_status answered: done');
    }
    ok($agents[0]->wait_error_log(qr/\[warn\] .*a stored action result cannot be sent \(.*\): the answer to panel #\d+ goes without it/, 5),
        'logged');
};

subtest 'an action that never reached an SDK releases its claim' => sub {
    my $id = uuid4();
    $pa->send_json(action($id, 'no-such-target'));
    my $a = answer($pa, $id);
    is($a && $a->{payload}{code}, 'UNKNOWN_TARGET', 'UNKNOWN_TARGET');
    wait_for(sub { redis_cli('EXISTS', "amon-test:$id") eq '0' }, 2);
    is(redis_cli('EXISTS', "amon-test:$id"), '0', 'no key left in redis');
    $pb->send_json(action($id, 'rd-a'));
    my $b = answer($pb, $id);
    is($b && $b->{type}, 'action_ack', 'the same msg_id is then executed');
    is($sdk->executed($id), 1, 'once');
};

subtest 'the same msg_id on both agents at the same moment runs once' => sub {
    my ($once, $answered) = (0, 0);
    my $rounds = 50;
    for my $r (1 .. $rounds) {
        my $id = uuid4();
        $pa->send_json(action($id, 'rd-a'));
        $pb->send_json(action($id, 'rd-a'));
        my ($x, $y) = (answer($pa, $id), answer($pb, $id));
        $answered++ if $x && $y;
        wait_for(sub { $sdk->executed($id) >= 1 }, 2);
        $once++ if $sdk->executed($id) == 1;
    }
    is($answered, $rounds, 'both panels got one answer every round');
    is($once, $rounds, 'the SDK ran every msg_id exactly once');
};

subtest 'without redis actions are refused, then it reconnects' => sub {
    $_->mark_log for @agents;
    redis_stop();
    ok(wait_error_log(qr/\[error\].*lost the connection to redis/, 5),
        'the loss is logged at error');

    my $id = uuid4();
    $pa->send_json(action($id, 'rd-a'));
    my $a = answer($pa, $id, 3);
    is($a && $a->{type}, 'error', 'an error answer');
    is($a && $a->{payload}{code}, 'INTERNAL', 'code INTERNAL');
    ok($a && $a->{payload}{final}, 'final');
    is($sdk->executed($id), 0, 'the action was not executed unchecked');

    # a store outage never masks the routing errors
    my $u = uuid4();
    $pa->send_json(action($u, 'no-such-target'));
    my $ua = answer($pa, $u, 3);
    is($ua && $ua->{payload}{code}, 'UNKNOWN_TARGET',
        'redis down: an unknown target is still UNKNOWN_TARGET');

    ok(redis_start(), 'redis-server is back');
    # every worker of both agents: $pa may be on any worker of agent A
    ok(wait_for(sub { !grep { $_->log_count(qr/reconnected to redis/)
        < $_->workers } @agents }, 5), 'the agents reconnected by themselves');

    my $id2 = uuid4();
    $pa->send_json(action($id2, 'rd-a'));
    my $b = answer($pa, $id2);
    is($b && $b->{type}, 'action_ack', 'actions work again');
    is($sdk->executed($id2), 1, 'executed once');
};

subtest 'a redis that hangs: INTERNAL after the timeout, claim freed later' => sub {
    my $pid = do { local (@ARGV, $/) = "$rdir/redis.pid"; <> };
    chomp $pid;
    kill 'STOP', $pid;
    my $id = uuid4();
    my $t0 = now_ms();
    $pa->send_json(action($id, 'rd-a'));
    my $a = answer($pa, $id, 4);
    my $ms = now_ms() - $t0;
    is($a && $a->{payload}{code}, 'INTERNAL', 'INTERNAL');
    # the command timeout (1 s by default) and amonitor_ack_timeout (1 s
    # here) end at the same time: either answer says the store failed
    like($a && $a->{payload}{message},
        qr/did not answer in time|the dedupe store failed/,
        'the store did not answer in time');
    ok($ms >= 900 && $ms < 2500, "after the ack timeout (${ms} ms)");
    kill 'CONT', $pid;
    # the late claim is released: the msg_id can be used again
    wait_for(sub { redis_cli('EXISTS', "amon-test:$id") eq '0' }, 3);
    is(redis_cli('EXISTS', "amon-test:$id"), '0',
        'the late claim was released');
    $pa->send_json(action($id, 'rd-a'));
    my $b = answer($pa, $id);
    is($b && $b->{type}, 'action_ack', 'a retry of that msg_id runs');
    is($sdk->executed($id), 1, 'once');
};

done_testing();
