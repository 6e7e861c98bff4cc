package Test::AMonitor::Browser;

# Headless Chromium driven over the DevTools protocol (a Mojolicious
# WebSocket client), for the dashboard's tests: start it, evaluate
# JavaScript in the page, wait for an expression to hold, open a URL,
# and collect the page's console errors and uncaught exceptions (the
# browser's own network log apart: refused connects while nginx is down
# are expected).
#
#   my $b = Test::AMonitor::Browser->start(ignore => qr{/csp-probe'});
#   $b->open_page("http://127.0.0.1:$port/amonitor/");
#   ok($b->js_until(q{document.title === 'AMonitor'}), '...');
#   $b->no_errors;
#   $b->stop;

use strict;
use warnings;

use File::Temp qw(tempdir);
use Mojo::JSON qw(decode_json encode_json);
use Mojo::UserAgent;
use Test::More;
use Test::AMonitor::Util qw(wait_for free_port);


# the browser binary, or a failure (not a skip) that ends the test
sub chromium {
    my ($bin) = grep { -x } map { ("$_/chromium", "$_/chromium-browser") }
        split(/:/, "$ENV{PATH}:/usr/bin");
    return $bin if $bin;
    fail('headless Chromium is needed (apt-get install chromium)');
    done_testing();
    exit;
}


# ignore => qr{...}: console/log errors that are expected
sub start {
    my ($class, %opt) = @_;
    my $self = bless { ignore => $opt{ignore}, seq => 0, replies => {},
        errors => [], network => [] }, $class;
    my $bin = chromium();

    $self->{profile} = tempdir('amon-chromium-XXXXXX', TMPDIR => 1,
        CLEANUP => 1);
    my $devport = free_port();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', "$self->{profile}/chromium.log");
        open(STDERR, '>&', \*STDOUT);
        exec($bin, '--headless', '--no-sandbox', '--disable-gpu',
            '--no-first-run', '--hide-scrollbars',
            "--user-data-dir=$self->{profile}",
            "--remote-debugging-port=$devport", '--window-size=1280,1000',
            'about:blank');
        exit 127;
    }
    $self->{pid} = $pid;

    my $ua = Mojo::UserAgent->new(inactivity_timeout => 0);
    $self->{ua} = $ua;
    my $page;
    wait_for(sub {
        my $list = eval { $ua->get("http://127.0.0.1:$devport/json/list")
            ->result->json };
        ($page) = grep { $_->{type} eq 'page' } @{ $list // [] };
        $page;
    }, 20);
    ok($page, 'Chromium is up with a page to drive') or BAIL_OUT('no browser');

    $ua->websocket($page->{webSocketDebuggerUrl} => sub {
        my (undef, $tx) = @_;
        $self->{cdp} = $tx;
        $tx->max_websocket_size(64 << 20);
        $tx->on(message => sub { $self->_event(decode_json($_[1])) });
    });
    wait_for(sub { $self->{cdp} }, 10);
    ok($self->{cdp}, 'DevTools protocol connected');
    $self->cdp($_) for qw(Runtime.enable Log.enable Page.enable);
    return $self;
}

sub _event {
    my ($self, $m) = @_;
    if (defined $m->{id}) {
        $self->{replies}{ $m->{id} } = $m;
        return;
    }
    my $meth = $m->{method} // '';
    my $err;
    if ($meth eq 'Runtime.consoleAPICalled' && $m->{params}{type} eq 'error') {
        $err = 'console.error: ' . join(' ',
            map { $_->{value} // $_->{description} // '' }
            @{ $m->{params}{args} });
    }
    elsif ($meth eq 'Runtime.exceptionThrown') {
        my $d = $m->{params}{exceptionDetails};
        $err = 'exception: ' . ($d->{exception}{description} // $d->{text});
    }
    elsif ($meth eq 'Log.entryAdded' && $m->{params}{entry}{level} eq 'error') {
        my $e = $m->{params}{entry};
        if (($e->{source} // '') eq 'network') {
            push @{ $self->{network} }, $e->{text};
            return;
        }
        $err = "$e->{source}: $e->{text}";
    }
    return unless defined $err;
    return if $self->{ignore} && $err =~ $self->{ignore};
    push @{ $self->{errors} }, $err;
}

# a DevTools command; its result (undef after 15 s without one)
sub cdp {
    my ($self, $method, $params) = @_;
    my $id = ++$self->{seq};
    $self->{cdp}->send(encode_json({ id => $id, method => $method,
        params => $params // {} }));
    wait_for(sub { $self->{replies}{$id} }, 15);
    my $r = delete $self->{replies}{$id};
    return $r ? $r->{result} : undef;
}

# evaluate an expression in the page; its value
sub js {
    my ($self, $expr) = @_;
    my $r = $self->cdp('Runtime.evaluate', { expression => $expr,
        returnByValue => \1 });
    return $r && $r->{result} ? $r->{result}{value} : undef;
}

# wait until an expression is true in the page
sub js_until {
    my ($self, $expr, $timeout) = @_;
    return wait_for(sub { $self->js($expr) }, $timeout // 10);
}

# go to $url and wait for the new document (not the one being left) to
# have its connection line written
sub open_page {
    my ($self, $url) = @_;
    $self->js('window.leaving = 1');
    $self->cdp('Page.navigate', { url => $url });
    return $self->js_until(q{!window.leaving && document.readyState ===
        'complete' && !!document.getElementById('conn')
        && document.getElementById('conn').textContent !== ''}, 10);
}

sub errors  { @{ $_[0]{errors} } }

# the test: no console error or exception so far
sub no_errors {
    my ($self) = @_;
    my @errors = $self->errors;
    return is(scalar(@errors), 0, 'no JavaScript console error or exception')
        || diag(join("\n", @errors));
}
sub network { @{ $_[0]{network} } }

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
