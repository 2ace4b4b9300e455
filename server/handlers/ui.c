/*
 * ui.c: GET /, a small self-contained page for people: drop two images, see the score, the SSIM
 * map as a heat map and the two gradient maps. Inline CSS and JS, no external resource.
 *
 * The page is public even when API keys are configured: it holds no data, and a browser cannot
 * send a Bearer header when it loads a page; the page sends the key it is given with POST /ssim.
 */
#include "handlers.h"

#include "../http.h"

static const char page[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<title>ssimd</title><style>"
    "body{font:15px system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;"
    "color:#222}h1{font-size:1.4em}.drops{display:flex;gap:1em}"
    ".drop{flex:1;border:2px dashed #999;border-radius:8px;padding:1.5em;text-align:center;"
    "cursor:pointer;min-height:5em}.drop.over{border-color:#06c;background:#eef5ff}"
    ".drop img{max-width:100%;max-height:180px;display:block;margin:.5em auto 0}"
    "form{margin:1em 0}label{margin-right:1em}button{font-size:1em;padding:.4em 1.2em}"
    "#score{font-size:2em;font-weight:600}.maps{display:flex;gap:1em;flex-wrap:wrap}"
    ".maps figure{margin:0;flex:1;min-width:250px}canvas{max-width:100%;"
    "image-rendering:pixelated;border:1px solid #ccc}#err{color:#b00}"
    "</style></head><body><h1>ssimd: SSIM of two images</h1>"
    "<div class=\"drops\"><div class=\"drop\" id=\"d1\">Image under test (img1)<br><small>drop "
    "or click</small></div><div class=\"drop\" id=\"d2\">Reference (img2)<br><small>drop or "
    "click</small></div></div><form id=\"f\">"
    "<label>padding <select name=\"padding\"><option>same</option><option>valid</option>"
    "</select></label><label>color <select name=\"color\"><option>rgb</option>"
    "<option>luma</option></select></label><label>API key <input id=\"key\" type=\"password\" "
    "size=\"16\"></label><button>Compare</button></form><p id=\"err\"></p>"
    "<div id=\"out\" hidden><div id=\"score\"></div><p id=\"detail\"></p><div class=\"maps\">"
    "<figure><canvas id=\"cmap\"></canvas><figcaption>SSIM map (dark blue 0 or less, yellow "
    "1)</figcaption></figure><figure><canvas id=\"cg1\"></canvas><figcaption>d score / d img1 "
    "(blue negative, red positive)</figcaption></figure><figure><canvas id=\"cg2\"></canvas>"
    "<figcaption>d score / d img2</figcaption></figure></div></div>"
    "<script>\n"
    "'use strict';const files={};\n"
    "function setup(id){const d=document.getElementById(id),i=document.createElement('input');"
    "i.type='file';i.accept='image/*';i.onchange=()=>take(d,id,i.files[0]);"
    "d.onclick=()=>i.click();d.ondragover=e=>{e.preventDefault();d.classList.add('over')};"
    "d.ondragleave=()=>d.classList.remove('over');d.ondrop=e=>{e.preventDefault();"
    "d.classList.remove('over');take(d,id,e.dataTransfer.files[0])}}\n"
    "function take(d,id,f){if(!f)return;files[id]=f;let im=d.querySelector('img');"
    "if(!im){im=document.createElement('img');d.appendChild(im)}"
    "im.src=URL.createObjectURL(f)}\n"
    "setup('d1');setup('d2');\n"
    "function heat(t){const s=[[68,1,84],[59,82,139],[33,145,140],[94,201,98],[253,231,37]];"
    "t=Math.min(1,Math.max(0,t))*(s.length-1);const i=Math.min(s.length-2,Math.floor(t)),"
    "f=t-i;return s[i].map((v,k)=>v+(s[i+1][k]-v)*f)}\n"
    "function diverge(t){t=(t-128)/127;return t<0?[255*(1+t),255*(1+t),255]:[255,255*(1-t),"
    "255*(1-t)]}\n"
    "function paint(id,b64,color){const im=new Image();im.onload=()=>{const c="
    "document.getElementById(id);c.width=im.width;c.height=im.height;const x=c.getContext('2d');"
    "x.drawImage(im,0,0);const p=x.getImageData(0,0,c.width,c.height);for(let i=0;i<p.data.length;"
    "i+=4){const rgb=color(p.data[i]);p.data[i]=rgb[0];p.data[i+1]=rgb[1];p.data[i+2]=rgb[2]}"
    "x.putImageData(p,0,0)};im.src='data:image/png;base64,'+b64}\n"
    "document.getElementById('f').onsubmit=async e=>{e.preventDefault();"
    "const err=document.getElementById('err');err.textContent='';"
    "if(!files.d1||!files.d2){err.textContent='Drop two images first.';return}"
    "const fd=new FormData(e.target);fd.append('map','png');fd.append('gradient','both');"
    "fd.append('gradient_format','png');fd.append('img1',files.d1);fd.append('img2',files.d2);"
    "const h={};const k=document.getElementById('key').value;if(k)h.Authorization='Bearer '+k;"
    "try{const r=await fetch('/ssim',{method:'POST',body:fd,headers:h});const j=await r.json();"
    "if(!r.ok){err.textContent=r.status+' '+j.error.code+': '+j.error.message;return}"
    "document.getElementById('out').hidden=false;"
    "document.getElementById('score').textContent='SSIM '+j.ssim.toFixed(6);"
    "document.getElementById('detail').textContent=j.width+'\\u00d7'+j.height+', '+"
    "j.channel_count+' channel(s) '+j.channels.map(v=>v.toFixed(4)).join(' / ')+"
    "'; worst 32\\u00d732 block at ('+j.worst.x+', '+j.worst.y+'): '+j.worst.ssim.toFixed(4)+"
    "'; backend '+j.backend+', '+j.timing_ms.total.toFixed(1)+' ms';"
    "paint('cmap',j.map.data,v=>heat(v/255));paint('cg1',j.gradients.img1.data,diverge);"
    "paint('cg2',j.gradients.img2.data,diverge)}catch(x){err.textContent=String(x)}};\n"
    "</script></body></html>\n";

static void ui_end(struct ssimd_request *req) {
  ssimd_request_respond(req, 200, "text/html; charset=utf-8", (void *)page, sizeof(page) - 1, 0);
}

const struct ssimd_handler ssimd_handler_ui = {
    .method = "GET",
    .path = "/",
    .name = "ui",
    .public_endpoint = 1,
    .on_end = ui_end,
};
