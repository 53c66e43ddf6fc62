//! Runs the video engine by hand, printing its events:
//!
//! `cargo run --example serve -- [STREAM_KEY] [CHANNEL_ID] [RTMP_ADDR] [HTTP_ADDR]`
//!
//! then publish to `rtmp://RTMP_ADDR/app/STREAM_KEY` (OBS "Custom" service, or ffmpeg)
//! and play `http://HTTP_ADDR/video/CHANNEL_ID/index.m3u8`.

use std::sync::Arc;
use std::time::Duration;

use local_video::{Ingest, IngestConfig};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let stream_key = args.next().unwrap_or_else(|| "sk_local".to_owned());
    let channel_id = args.next().unwrap_or_else(|| "local".to_owned());
    let rtmp_addr = args.next().unwrap_or_else(|| "127.0.0.1:1935".to_owned());
    let http_addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());

    let (ingest, mut events) = Ingest::new(IngestConfig::default());
    ingest.allow_key(&stream_key, &channel_id);
    let rtmp = TcpListener::bind(&rtmp_addr)
        .await
        .expect("RTMP address free");
    let http = TcpListener::bind(&http_addr)
        .await
        .expect("HTTP address free");
    println!("publish to rtmp://{rtmp_addr}/app/<stream key>");
    println!("play http://{http_addr}/video/{channel_id}/index.m3u8");

    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(ingest.clone().serve_rtmp(rtmp, stopped));
    let router = ingest.playback_router(Arc::new(|_, _| true));
    tokio::spawn(async move { axum::serve(http, router).await });

    let mut report = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            Some(event) = events.recv() => println!("{}", serde_json::to_string(&event).unwrap()),
            _ = report.tick() => {
                if ingest.is_live(&channel_id)
                    && let Some(session) = ingest.session(&channel_id)
                {
                    println!("{}", serde_json::to_string(&session).unwrap());
                }
            }
        }
    }
}
