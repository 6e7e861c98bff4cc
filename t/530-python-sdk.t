# The SDK for Python programs (sdk/python, package amonitor): its unit
# tests with Debian's python3, then the binding behind a two-worker nginx
# with the module: heartbeats with metrics and events reach a panel, an
# action runs its handler exactly once, a repeated msg_id is answered
# "duplicate ignored" without running it again, async handlers and
# handler exceptions become the right acks, on an asyncio loop and on the
# C SDK's own thread; the example program serves the CLI; all stop
# cleanly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use POSIX qw(WNOHANG);

my $ROOT = $Test::AMonitor::REPO;
my $PYTHON = $ENV{SDK_PYTHON} // '/usr/bin/python3';
my $BUILD = $ENV{AMON_BUILD} // "$ROOT/build";
my $LIB = "$BUILD/sdk/libamonitor_sdk.so.1";
my $PYDIR = "$ROOT/sdk/python";
my $CLI = "$BUILD/amonitor";

for my $f ($PYTHON, $LIB, $CLI) {
    next if -e $f;
    fail("$f exists (Debian's python3; make build-sdk tools)");
    done_testing();
    exit;
}

local $ENV{AMONITOR_SDK_LIB} = $LIB;
local $ENV{AMON_BUILD} = $BUILD;
local $ENV{PYTHONPATH} = $PYDIR;
local $ENV{PYTHONDONTWRITEBYTECODE} = 1;

# --- the unit tests ------------------------------------------------------

subtest 'unit tests (python3 -m unittest, sdk/python/tests)' => sub {
    my $out = `cd '$PYDIR' && '$PYTHON' -m unittest discover -v -s tests 2>&1`;
    my $rc = $? >> 8;
    my $n = 0;
    for my $line (split /\n/, $out) {
        next unless $line =~ /^(test_\w+) \(([\w.]+)\) \.\.\. (.*)$/;
        $n++;
        ok($3 eq 'ok', "$2") or diag($line);
    }
    my ($ran) = $out =~ /^Ran (\d+) tests? in /m;
    is($rc, 0, 'unittest exits 0') or diag($out);
    ok($ran && $ran >= 30 && $ran == $n, "every test reported (ran "
        . ($ran // 0) . ", parsed $n)") or diag($out);
    like($out, qr/\n\nOK\n\z/, 'OK, nothing skipped or expected to fail')
        or diag($out);
};

# --- the binding behind nginx --------------------------------------------

my $t = Test::AMonitor->new(workers => 2);
my @PROCS;

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return '';
    local $/;
    return <$fh> // '';
}

# start a Python program; its output goes to a file in the prefix
# start_py(NAME, [{ chdir => DIR },] ARGS...): python3 ARGS, in DIR
sub start_py {
    my ($name, @cmd) = @_;
    my $dir = ref $cmd[0] eq 'HASH' ? (shift @cmd)->{chdir} : undef;
    my $log = $t->prefix . "/$name.log";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        chdir($dir) or POSIX::_exit(125) if defined $dir;
        open(STDOUT, '>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT);
        exec($PYTHON, @cmd) or POSIX::_exit(127);
    }
    my $proc = { pid => $pid, log => $log, name => $name };
    push @PROCS, $proc;
    ok(wait_for(sub { slurp($log) =~ /serving/ }, tscale(10)),
        "$name is listening") or diag(slurp($log));
    return $proc;
}

sub stop_py {
    my ($proc) = @_;
    return undef unless $proc->{pid};
    kill 'TERM', $proc->{pid};
    my $status;
    wait_for(sub {
        my $r = waitpid($proc->{pid}, WNOHANG);
        $status = $? if $r == $proc->{pid};
        return $r != 0;
    }, tscale(10)) or do {
        kill 'KILL', $proc->{pid};
        waitpid($proc->{pid}, 0);
    };
    $proc->{pid} = undef;
    return $status;
}

END { kill 'KILL', grep { $_ } map { $_->{pid} } @PROCS }

my $target = "$PYDIR/tests/e2e_target.py";
my $example = "$PYDIR/examples/amonitor-sdk-example.py";
my $aio = start_py('py-aio', $target, '--port', $t->port(1),
    '--target-id', 'py-aio', '--mode', 'asyncio');
my $thr = start_py('py-thread', $target, '--port', $t->port(2),
    '--target-id', 'py-thread', '--mode', 'thread');
my $ex = start_py('py-example', $example, '--port', $t->port(3),
    '--target-id', 'py-example', '--interval', 0.3, '--token', 'ex-secret');
my $exa = start_py('py-example-aio', $example, '--port', $t->port(4),
    '--target-id', 'py-example-aio', '--interval', 0.3, '--asyncio',
    '--event-interval', 0.2);
# the first project's command, in the SDK's directory
my $exo = start_py('py-example-orig', { chdir => $PYDIR }, '-m',
    'amonitor_sdk.example', '--port', $t->port(5), '--target-id',
    'py-example-orig', '--interval', 0.3);

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_target py-aio ws://127.0.0.1:%%PORT_1%%/;\n"
        . "amonitor_target py-thread ws://127.0.0.1:%%PORT_2%%/;\n"
        . "amonitor_target py-example ws://127.0.0.1:%%PORT_3%%/ "
        . "token=ex-secret;\n"
        . "amonitor_target py-example-aio ws://127.0.0.1:%%PORT_4%%/;\n"
        . "amonitor_target py-example-orig ws://127.0.0.1:%%PORT_5%%/;",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my $workers = $t->effective_workers;
for my $proc ($aio, $thr, $ex, $exa, $exo) {
    ok(wait_for(sub {
        my @c = slurp($proc->{log}) =~ /agent connected/g;
        @c >= $workers;
    }, tscale(10)), "every worker ($workers) connected to $proc->{name}")
        or diag(slurp($proc->{log}));
}

my $p = $t->panel('/ws/panel');

sub action {
    my ($id, $target, $name, %params) = @_;
    return { msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(),
        payload => { action => $name, params => \%params } };
}

# the panel's answer to action $id: its payload (or the error envelope)
sub ask {
    my ($id, @action) = @_;
    $p->send_json(action($id, @action));
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH';
        return 1 if ($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id;
        return ($j->{type} // '') eq 'action_ack'
            && ($j->{payload}{action_msg_id} // '') eq $id;
    }, tscale(5));
    return $m ? ($m->{json}{type} eq 'error' ? $m->{json}
        : $m->{json}{payload}) : undef;
}

sub runs {
    my ($proc, $name, $id) = @_;
    my @r = slurp($proc->{log}) =~ /^ran \Q$name $id\E on /mg;
    return scalar @r;
}

for my $proc ($aio, $thr) {
    my $id = $proc->{name};
    my $mode = $id eq 'py-aio' ? 'asyncio' : 'thread';

    subtest "$id: the binding on " . ($mode eq 'asyncio'
        ? 'an asyncio loop' : 'the SDK\'s own thread') => sub {
        my $hb = $p->recv_type('heartbeat', target_id => $id,
            timeout => tscale(5));
        ok($hb, 'a heartbeat reaches the panel');
        is($hb && $hb->{json}{payload}{status}, 'up', '... status up');
        is($hb && $hb->{json}{payload}{metrics}{mode}, $mode,
            '... with the provider\'s metrics');

        my $mid = "py-$id-$$";
        my $ack = ask($mid, $id, 'restart');
        ok($ack && $ack->{success}, 'restart: success')
            or diag(explain($ack));
        is($ack && $ack->{message}, 'restarted', '... the handler\'s message');
        my $ev = $p->recv_type('event', target_id => $id,
            event_name => 'restarted', timeout => tscale(5));
        is($ev && $ev->{json}{payload}{data}{count}, 1,
            'the event the handler sent reaches the panel');

        my $dup = ask($mid, $id, 'restart');
        is($dup && $dup->{message}, 'duplicate ignored',
            'the same msg_id again: "duplicate ignored"');
        sleep_loop(tscale(0.5));
        is(runs($proc, 'restart', $mid), 1,
            'the handler ran exactly once');

        $ack = ask("$mid-drain", $id, 'drain', queue => 'jobs');
        ok($ack && $ack->{success}, 'drain (an async handler): success');
        is($ack && $ack->{message}, 'drained jobs', '... with its message');

        $ack = ask("$mid-crash", $id, 'crash');
        ok($ack && defined $ack->{success} && !$ack->{success},
            'crash (the handler raises): success false');
        is($ack && $ack->{message}, 'handler raised ValueError: disk full',
            '... naming the exception');
        like(slurp($proc->{log}), qr/Traceback.*ValueError: disk full/s,
            '... whose traceback the program logs');

        $ack = ask("$mid-reboot", $id, 'reboot');
        is($ack && $ack->{message}, 'unsupported action: reboot',
            'an action without a handler is refused');

        like(slurp($proc->{log}), qr/^ran restart \Q$mid\E on (\S+)/m,
            'the handler ran');
        my ($thread) = slurp($proc->{log})
            =~ /^ran restart \Q$mid\E on (\S+)/m;
        if ($mode eq 'asyncio') {
            is($thread, 'MainThread', '... on the loop\'s (main) thread');
        }
        else {
            isnt($thread // 'MainThread', 'MainThread',
                '... on the SDK\'s I/O thread');
        }
    };
}

subtest 'the example program' => sub {
    my $hb = $p->recv_type('heartbeat', target_id => 'py-example',
        timeout => tscale(5));
    ok($hb && defined $hb->{json}{payload}{metrics}{uptime_s},
        'its heartbeats carry uptime_s');
    my $ev = $p->recv_type('event', target_id => 'py-example-aio',
        event_name => 'tick', timeout => tscale(5));
    ok($ev && $ev->{json}{payload}{data}{seq} >= 1,
        'the asyncio one sends "tick" events');

    my $url = $t->ws_url('/ws/panel');
    for my $id (qw(py-example py-example-aio py-example-orig)) {
        my $send = "'$CLI' send --url '$url' --target-id $id --msg-id $id-$$";
        my $out = `$send 2>&1`;
        is($? >> 8, 0, "amonitor send to $id: exit 0") or diag($out);
        like($out, qr/^ack_matched \{.*"action_msg_id":"$id-$$".*"restarted"/,
            '... ack_matched with "restarted"');
        my $dd = `'$CLI' dedupe-check --url '$url' --target-id $id 2>&1`;
        is("$? $dd", "0 dedupe_ok\n", "dedupe-check $id: dedupe_ok");
        $out = `'$CLI' send --url '$url' --target-id $id --action reboot 2>&1`;
        like($out, qr/unsupported action: reboot/,
            'an unknown action is refused with the program\'s message');
    }
    unlike(slurp($ex->{log}), qr/missing or wrong bearer token/,
        'the agent presents the right token');
};
$p->close;

ok($t->stop, 'nginx stops cleanly with agents connected');

for my $proc ($aio, $thr, $ex, $exa, $exo) {
    is(stop_py($proc), 0, "$proc->{name} exits 0 on SIGTERM");
}
like(slurp($aio->{log}), qr/stopped after 1 restarts/, 'py-aio says so');
like(slurp($ex->{log}), qr/stopping \(2 restarts, 1 refused\)/,
    'the example counted its actions (dedupe-check\'s duplicate stopped '
    . 'by the agent)');
for my $proc ($aio, $thr, $ex, $exa) {
    unlike(slurp($proc->{log}), qr/Fatal Python error|Segmentation/,
        "$proc->{name}: no crash");
}

done_testing();
