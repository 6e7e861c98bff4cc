# A token limited with targets= and an action that names its target only
# by payload.target_url: the rights are checked against the name the
# target gets when it is dialed on demand (the URL normalised: lower-case
# scheme and host, an explicit port, "/" for an empty path), never
# against the URL as the panel wrote it.  With the Redis dedupe store the
# claim is answered later; the target the action then reaches is checked
# again (a URL that became a registered SDK's meanwhile is that SDK), and
# a refusal releases the claim.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::RedisProxy;
use IO::Socket::INET;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my %sdk = map { $_ => fake_sdk(port => $t->port($_), target_id => "s$_",
    heartbeat_interval => 0) } 1 .. 4;

# norm-T names the normalised URLs of s1 and s2; raw-T the URL of s3
# written without its path, as a panel may write it
$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 2s;
EOC
    config => <<'EOC',
        location = /ws/panel {
            amonitor_panel on;
            amonitor_panel_token norm-T
                targets=ws://127.0.0.1:%%PORT_1%%/,ws://127.0.0.1:%%PORT_2%%/;
            amonitor_panel_token raw-T
                targets=ws://127.0.0.1:%%PORT_3%%,ws://127.0.0.1:%%PORT_4%%*;
        }
        location = /status { amonitor_status; }
EOC
)->run;

sub bearer { return (headers => { Authorization => "Bearer $_[0]" }) }

sub answer {
    my ($p, $id, $timeout) = @_;
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ((($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id) || (($j->{type} // '') eq
            'action_ack' && ($j->{payload}{action_msg_id} // '') eq $id));
    }, $timeout // 5);
    return $m ? $m->{json} : undef;
}

sub action {
    my ($id, %f) = @_;
    my $url = delete $f{url};
    return { msg_id => $id, type => 'action', timestamp => now_ms(), %f,
        payload => { action => 'restart',
            defined $url ? (target_url => $url) : () } };
}

# the answer to an action by URL only: "ack" or the error code
sub ask_url {
    my ($p, $url) = @_;
    my $id = uuid4();
    $p->send_json(action($id, url => $url));
    my $a = answer($p, $id);
    return ($a ? ($a->{type} eq 'action_ack' ? 'ack' : $a->{payload}{code})
        : 'none', $id);
}

sub status { return try_decode_json($t->http_get('/status')->{body}) // {} }

sub port { $t->port($_[0]) }

subtest 'the normalised name matches where the written URL does not' => sub {
    my $p = $t->panel('/ws/panel', bearer('norm-T'));

    my ($r, $id) = ask_url($p, 'ws://127.0.0.1:' . port(1));
    is($r, 'ack', 'no path written: it gets "/" and matches: acked');
    is($sdk{1}->executed($id), 1, 's1 ran it');

    ($r, $id) = ask_url($p, 'WS://127.0.0.1:' . port(2) . '/');
    is($r, 'ack', 'an upper-case scheme: normalised, it matches: acked');
    is($sdk{2}->executed($id), 1, 's2 ran it');

    ($r, $id) = ask_url($p, 'ws://127.0.0.1:' . port(1) . '/');
    is($r, 'ack', 'the URL written as it is normalised: acked');
    $p->close(1000);
};

subtest 'the written URL matches where the normalised name does not' => sub {
    my $p = $t->panel('/ws/panel', bearer('raw-T'));
    my $before = status()->{forbidden} // 0;
    my $url = 'ws://127.0.0.1:' . port(3);

    $t->mark_log;
    my ($r, $id) = ask_url($p, $url);
    is($r, 'FORBIDDEN', "\"$url\" would be named \"$url/\": FORBIDDEN");
    sleep_loop(0.5);
    is($sdk{3}->accepted, 0, 'nothing dialed s3');
    is($sdk{3}->executed($id), 0, 'nor ran it');
    error_log_like(qr/\[info\] .*amonitor: action "\Q$id\E" of panel #\d+ to "\Q$url\E\/" refused: this panel's token may not act on this target/,
        'the log names the normalised name');
    is(status()->{forbidden}, $before + 1, 'counted as forbidden');

    # a target_id names what a dial would learn: the URL does not count
    $id = uuid4();
    $p->send_json(action($id, target_id => 'web-9',
        url => 'ws://127.0.0.1:' . port(4) . '/'));
    my $a = answer($p, $id);
    is($a && $a->{payload}{code}, 'FORBIDDEN',
        'a target_id outside the token, with a URL inside it: FORBIDDEN');

    # an upper-case scheme, under a prefix once normalised
    ($r, $id) = ask_url($p, 'WS://127.0.0.1:' . port(4) . '/');
    is($r, 'ack', 'a prefix of the normalised name: acked');
    is($sdk{4}->executed($id), 1, 's4 ran it');
    $p->close(1000);
};

$t->stop;

# --- the Redis store: the claim is answered later --------------------------

# AMON_TEST_REDIS if it answers, else a redis-server of our own
sub redis_answers {
    my ($addr) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 2)
        or return 0;
    print $s "PING\r\n";
    my $line = <$s> // '';
    return $line =~ /^\+PONG/;
}

my ($redis, $raddr);
if ($ENV{AMON_TEST_REDIS} && redis_answers($ENV{AMON_TEST_REDIS})) {
    $raddr = $ENV{AMON_TEST_REDIS};

} elsif (-x $Test::AMonitor::Redis::SERVER) {
    $redis = Test::AMonitor::Redis->new;
    $raddr = $redis->addr if $redis->start;
}
note('the Redis subtest uses ' . ($raddr // 'nothing'));

subtest 'Redis: the target reached after the claim is checked again' => sub {
    plan skip_all => 'no Redis: neither AMON_TEST_REDIS nor redis-server'
        unless $raddr;

    my ($rhost, $rport) = split /:/, $raddr;
    my $proxy = Test::AMonitor::RedisProxy->new(redis_host => $rhost,
        redis_port => $rport);
    my $hub = fake_sdk(target_id => 'hub', heartbeat_interval => 0);
    my $db = fake_sdk(target_id => 'db', heartbeat_interval => 0);
    my $db2 = fake_sdk(target_id => 'db2', heartbeat_interval => 0);
    my $r = Test::AMonitor->new(workers => 1, log_level => 'info');
    my $prefix = "amon-t188-$$:";

    $r->write_config(http_config => "
    amonitor_zone amon 1m;
    amonitor_target hub ws://127.0.0.1:${\ $hub->port }/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 6s;
    amonitor_redis 127.0.0.1:${\ $proxy->port } prefix=$prefix
        timeout=5s lease=20s;
", config => '
        location = /ws/panel {
            amonitor_panel on;
            amonitor_panel_token admin-T;
            amonitor_panel_token web-T targets=web-*,ws://127.0.0.1:'
        . $db2->port . '/,ws://127.0.0.1:' . $db->port . '/;
        }
')->run;

    ok($hub->wait_connections(1, 5), 'the agent dialed the hub');
    ok($r->wait_error_log(qr/connected to redis/, 5), 'and redis');

    # the hub's SDK tells the agent that another SDK runs at a URL
    my $register = sub {
        my ($name, $port) = @_;
        my ($cid) = $hub->conn_ids;
        $hub->send_to($cid, encode_json({ msg_id => uuid4(),
            type => 'register', target_id => 'hub', timestamp => now_ms(),
            payload => { target_id => $name,
                sdk_url => "ws://127.0.0.1:$port/" } }));
    };

    # an action whose claim Redis answers only once "db" has registered
    # (the first script call naming its msg_id is the claim, by EVALSHA)
    my $race = sub {
        my ($p, $sdk, %f) = @_;
        my $id = uuid4();
        $proxy->on(qr/EVAL.*\Q$id\E/s, 'hold');
        $p->send_json(action($id, %f));
        ok(wait_for(sub { grep { /EVAL.*\Q$id\E/s }
            $proxy->commands }, 3), 'the claim is on its way to Redis');
        ok(!answer($p, $id, 0.3), 'and not answered yet');
        $register->($sdk->target_id, $sdk->port);
        ok($sdk->wait_connections(1, 3),
            'meanwhile ' . $sdk->target_id . ' registered at the URL');
        $proxy->release;
        return (answer($p, $id, 5), $id);
    };

    my $p = $r->panel('/ws/panel', bearer('web-T'));

    $r->mark_log;
    my ($a, $id) = $race->($p, $db, target_id => 'web-x',
        url => 'ws://127.0.0.1:' . $db->port . '/');
    is($a && $a->{payload}{code}, 'FORBIDDEN',
        'a web-* name for the URL that is now db: FORBIDDEN');
    ok($a && $a->{payload}{final}, 'final');
    sleep_loop(0.3);
    is($db->executed($id), 0, 'db did not get it');
    ok($r->wait_error_log(qr/\[info\] .*amonitor: action "\Q$id\E" of panel #\d+ to "db" refused/, 3),
        'the refusal names db');

    # the claim was released: the same msg_id runs for a token that may
    my $admin = $r->panel('/ws/panel', bearer('admin-T'));
    $admin->send_json(action($id, target_id => 'db'));
    my $b = answer($admin, $id);
    ok($b && $b->{type} eq 'action_ack' && !$b->{payload}{duplicate},
        'the claim was released: a retry by another token runs');
    is($db->executed($id), 1, 'once');

    # by URL only: allowed by its normalised name, then it is db2's
    ($a, $id) = $race->($p, $db2, url => 'ws://127.0.0.1:' . $db2->port);
    is($a && $a->{payload}{code}, 'FORBIDDEN',
        'a URL only, allowed as a URL, that is now db2: FORBIDDEN');
    sleep_loop(0.3);
    is($db2->executed($id), 0, 'db2 did not get it');

    # the common case is unchanged: a known target, claimed through Redis
    ($a, $id) = (undef, uuid4());
    $p->send_json(action($id, target_id => 'web-x',
        url => 'ws://127.0.0.1:' . $hub->port . '/'));
    $a = answer($p, $id);
    is($a && $a->{payload}{code}, 'FORBIDDEN',
        'a web-* name for the known hub: FORBIDDEN before the claim');
    ok(!grep({ /EVAL.*\Q$id\E/s } $proxy->commands),
        'and never claimed');

    $admin->close(1000);
    $p->close(1000);
    $r->stop;
    $proxy->stop;
};

done_testing();
